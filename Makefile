# Every target bootstraps .venv (and, for tests, the Debian packages) on first use.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: sim test proto lint bootstrap bootstrap-test bench

$(VENV)/.stamp: pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	touch $@

bootstrap: $(VENV)/.stamp

bootstrap-test: bootstrap
	bash scripts/bootstrap.sh --test

sim: bootstrap
	$(VENV)/bin/chargeport sim $(ARGS)

proto: bootstrap
	$(PY) scripts/gen_proto.py

lint: bootstrap
	$(PY) scripts/gen_proto.py --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: bootstrap-test lint
	$(VENV)/bin/pytest -q -p no:cacheprovider $(ARGS)

bench: bootstrap
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b | tail -n 1; done
