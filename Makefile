# statusflow: `make run` serves on SQLite, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)
BENCH_STAMP := $(VENV)/.bench-installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)
BENCH_ARGS ?=

.PHONY: install install-bench run test lint typecheck bench bench-quick bench-series clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The benchmark needs the `bench` extra (psutil, matplotlib) on top of the usual install.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	rm -f $(VENV)/.bench-installed-*
	touch $(BENCH_STAMP)

install-bench: $(BENCH_STAMP)

run: install
	$(BIN)/statusflow serve $(if $(CONFIG),--config $(CONFIG))

test: install
	$(BIN)/ruff check kernel plugins tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check kernel plugins tests

typecheck: install
	$(BIN)/mypy

# Load benchmark (issue 4): statusflow against an in-run group-commit baseline.
# Extra options: make bench BENCH_ARGS='--db sqlite --concurrency 64 --json out.json'
bench: install-bench
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-quick: install-bench
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)

bench-series: install-bench
	$(BIN)/python -m bench.run --series $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
