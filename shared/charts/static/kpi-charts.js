// Draws the KPI charts of the page (shared/charts/templates/kpi_charts.html) with Vega-Embed.
// Content-Security-Policy safe: Vega's expressions run in its interpreter (ast: true) instead
// of eval, and no style element is injected (defaultStyle: false, no tooltip handler).
(function () {
  "use strict";

  function draw(root) {
    (root || document).querySelectorAll("[data-kpi-chart]").forEach(function (view) {
      if (view.dataset.rendered) return;
      var source = document.getElementById("kpi-chart-spec-" + view.dataset.kpiChart);
      if (!source) return;
      view.dataset.rendered = "drawing";
      window
        .vegaEmbed(view, JSON.parse(source.textContent), {
          ast: true,
          actions: false,
          renderer: "svg",
          defaultStyle: false,
          tooltip: false,
        })
        .then(function () {
          view.dataset.rendered = "done";
        })
        .catch(function (error) {
          view.dataset.rendered = "failed";
          console.error("KPI chart " + view.dataset.kpiChart + " could not be drawn", error);
        });
    });
  }

  window.kpiCharts = { draw: draw };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { draw(); });
  } else {
    draw();
  }
  // Pages that swap content in with htmx draw the charts that arrive.
  document.addEventListener("htmx:afterSwap", function (event) { draw(event.target); });
})();
