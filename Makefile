# The two commands: `make run` (the platform on the embedded stack) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint unit integration bench schemas token lock clean user translations vendor browser-check

$(STAMP): requirements/dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements/dev.txt
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m deploy.embedded

test: $(STAMP) browser-check
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

# The browser tests drive Debian's Chromium; say how to get it rather than skip them.
CHROMIUM ?= /usr/bin/chromium
browser-check:
	@test -x $(CHROMIUM) || { echo; \
	  echo "make test needs Chromium for the portal's browser tests, and $(CHROMIUM) is missing."; \
	  echo "Install it (Debian/Ubuntu, as root):  apt-get install -y chromium fonts-noto-cjk"; \
	  echo "or point CHROMIUM=/path/to/chromium at another build."; echo; exit 1; }

unit: $(STAMP)
	$(PY) -m pytest tests/unit

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

schemas: $(STAMP)
	$(PY) -m shared.events.schemas

# Let a coordinator or a university officer sign in to the portal:
# make user ROLE=coordinator EMAIL=someone@city.kitakyushu.lg.jp
user: $(STAMP)
	$(PY) -m services.portal user add --role $(ROLE) --email $(EMAIL)

# The portal's gettext catalogs: extract the messages, merge them into each language's .po,
# compile the .mo files (committed, so that a fresh clone and the image need no build step;
# tests/unit/test_portal_translations.py fails when a message is missing, untranslated or the
# .mo is stale).
LOCALES := services/portal/locale
translations: $(STAMP)
	$(VENV)/bin/pybabel extract -F services/portal/babel.cfg -k Np_:1,2 --no-location --sort-output \
	  --project=portal --copyright-holder="City of Kitakyushu" -o $(LOCALES)/messages.pot services/portal
	for l in zh_TW ja; do \
	  if [ -f $(LOCALES)/$$l/LC_MESSAGES/messages.po ]; then \
	    $(VENV)/bin/pybabel update --no-fuzzy-matching --ignore-obsolete --ignore-pot-creation-date -i $(LOCALES)/messages.pot -d $(LOCALES) -l $$l; \
	  else $(VENV)/bin/pybabel init -i $(LOCALES)/messages.pot -d $(LOCALES) -l $$l; fi; done
	$(VENV)/bin/pybabel compile --statistics -d $(LOCALES)

# Re-copy the vendored front-end packages from the npm registry (see static/vendor/README.md).
vendor:
	rm -rf /tmp/kki-vendor && mkdir -p /tmp/kki-vendor && cd /tmp/kki-vendor && \
	  npm pack --silent htmx.org@2.0.11 sortablejs@1.15.7 axe-core@4.14.1 && \
	  for f in *.tgz; do mkdir -p $${f%.tgz} && tar xzf $$f -C $${f%.tgz}; done
	cp /tmp/kki-vendor/htmx.org-2.0.11/package/dist/htmx.min.js services/portal/static/vendor/htmx-2.0.11.min.js
	cp /tmp/kki-vendor/sortablejs-1.15.7/package/Sortable.min.js services/portal/static/vendor/Sortable-1.15.7.min.js
	cp /tmp/kki-vendor/axe-core-4.14.1/package/axe.min.js tests/browser/vendor/axe-4.14.1.min.js

# A token for local use: make token ROLE=student SUB=stu-001
token: $(STAMP)
	$(PY) -m shared.auth mint --role $(ROLE) --sub $(SUB)

# `matching` (PyPI) is the benchmark's baseline only; it is not a dependency of the platform.
bench: $(STAMP)
	$(PY) -m pip install --quiet matching==1.4.3
	$(PY) benchmarks/matching_bench.py

# Re-pin everything from requirements/*.in (run after changing them; review the diff).
lock:
	rm -rf /tmp/kki-lock && $(PYTHON) -m venv /tmp/kki-lock
	/tmp/kki-lock/bin/pip install --quiet -r requirements/runtime.in
	(echo "# Generated from runtime.in by 'make lock'."; /tmp/kki-lock/bin/pip freeze) > requirements/runtime.txt
	/tmp/kki-lock/bin/pip install --quiet -r requirements/dev.in
	(echo "# Generated from dev.in by 'make lock'."; /tmp/kki-lock/bin/pip freeze) > requirements/dev.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
