# The two commands: `make run` (the platform on the embedded stack) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint unit integration bench bench-pipeline schemas token lock clean

$(STAMP): requirements/dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements/dev.txt
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m deploy.embedded

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
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

# `matching` (PyPI) is the benchmark's baseline only; it is not a dependency of the platform.
bench: $(STAMP)
	$(PY) -m pip install --quiet matching==1.4.3
	$(PY) benchmarks/matching_bench.py

# The event pipeline and e-mail delivery against raw baselines on the embedded stack
# (starts its own servers on free ports; about 6 minutes). ARGS="--reps 1" for a quick look.
bench-pipeline: $(STAMP)
	$(PY) benchmarks/pipeline_bench.py $(ARGS)

# Re-pin everything from requirements/*.in (run after changing them; review the diff).
lock:
	rm -rf /tmp/kki-lock && $(PYTHON) -m venv /tmp/kki-lock
	/tmp/kki-lock/bin/pip install --quiet -r requirements/runtime.in
	(echo "# Generated from runtime.in by 'make lock'."; /tmp/kki-lock/bin/pip freeze) > requirements/runtime.txt
	/tmp/kki-lock/bin/pip install --quiet -r requirements/dev.in
	(echo "# Generated from dev.in by 'make lock'."; /tmp/kki-lock/bin/pip freeze) > requirements/dev.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
