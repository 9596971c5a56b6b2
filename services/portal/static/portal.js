// Drag-and-drop reordering of ranked lists (a company's ranking, a student's application).
// The lists work without it: each item has Up/Down buttons that post the new order. With it,
// dragging moves the item together with its hidden "order" input, so saving sends the order
// shown on the screen.
(function () {
  "use strict";

  function renumber(list) {
    list.querySelectorAll(":scope > li").forEach(function (item, index) {
      var number = item.querySelector(".position-number");
      if (number) { number.textContent = String(index + 1); }
      var buttons = item.querySelectorAll(".move button");
      if (buttons.length >= 2) {
        buttons[0].disabled = index === 0;
        buttons[1].disabled = index === list.children.length - 1;
      }
    });
  }

  function init(root) {
    if (typeof Sortable === "undefined") { return; }
    root.querySelectorAll("[data-sortable]").forEach(function (list) {
      if (list.dataset.sortableReady) { return; }
      list.dataset.sortableReady = "1";
      Sortable.create(list, {
        handle: ".drag-handle",
        animation: 150,
        // Pointer events rather than native HTML5 drag: the same on touch screens and mice.
        forceFallback: true,
        onEnd: function () {
          renumber(list);
          var status = document.getElementById("unsaved");
          if (status) { status.textContent = list.dataset.unsavedText || ""; }
        }
      });
    });
  }

  // Filters are folded on phones (a <details>); a wide screen has room to show them open.
  function openFilters(root) {
    if (!window.matchMedia || !window.matchMedia("(min-width: 48em)").matches) { return; }
    root.querySelectorAll("details.filter-box").forEach(function (box) { box.open = true; });
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); openFilters(document); });
  document.addEventListener("htmx:afterSettle", function (event) { init(event.target || document); });
})();
