# statusflow: `make run` serves on SQLite, `make test` runs the suite.
# `make run PORT=8081 HOST=0.0.0.0 CONFIG=statusflow.toml`: each is optional.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The stamps change with setup.cfg and pyproject.toml: an edit reinstalls, nothing else does.
# `make run` installs what the service needs (`pip install -e .`); `make test` the test
# toolchain on top (the `test` extra).
SETUP_SUM := $(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)
RUN_STAMP := $(VENV)/.run-installed-$(SETUP_SUM)
STAMP := $(VENV)/.installed-$(SETUP_SUM)
BENCH_STAMP := $(VENV)/.bench-installed-$(SETUP_SUM)
BENCH_ARGS ?=
# The contrib distributions, pip-installed (not editable) as users install them; the stamp
# changes with their files, so that an edit reinstalls them and nothing else does.
CONTRIB := contrib/statusflow-stripe contrib/statusflow-twilio contrib/statusflow-reviews \
	contrib/statusflow-sendgrid contrib/statusflow-whatsapp contrib/statusflow-easypost
CONTRIB_FILES := $(shell find $(CONTRIB) -type f -not -path '*/tests/*' -not -path '*/build/*' \
	-not -path '*.egg-info/*' -not -path '*/__pycache__/*' -not -path '*/.pytest_cache/*' | sort)
CONTRIB_STAMP := $(VENV)/.contrib-installed-$(shell cat $(CONTRIB_FILES) | cksum | cut -d' ' -f1)

.PHONY: install install-run install-bench install-contrib run test lint typecheck typecheck-tree bench bench-quick bench-series bench-actions bench-ui screenshots clean

$(BIN)/python:
	@echo "==> creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): setup.cfg pyproject.toml | $(BIN)/python
	@echo "==> installing statusflow and what it needs to run into $(VENV) (pip install -e .)"
	$(BIN)/python -m pip install -e .
	rm -f $(VENV)/.run-installed-*
	touch $(RUN_STAMP)

install-run: $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	@echo "==> installing the test toolchain into $(VENV) (pip install -e '.[test]')"
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

$(CONTRIB_STAMP): $(STAMP) $(CONTRIB_FILES)
	$(BIN)/python -m pip install --quiet $(addprefix ./,$(CONTRIB))
	rm -f $(VENV)/.contrib-installed-*
	touch $(CONTRIB_STAMP)

install-contrib: $(CONTRIB_STAMP)

# The benchmark needs the `bench` extra (psutil, matplotlib) on top of the usual install.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	rm -f $(VENV)/.bench-installed-*
	touch $(BENCH_STAMP)

install-bench: $(BENCH_STAMP)

run: install-run
	@echo "==> statusflow serve (Ctrl-C stops it)"
	$(BIN)/statusflow serve $(if $(CONFIG),--config $(CONFIG)) $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

test: install install-contrib typecheck-tree
	$(BIN)/ruff check kernel plugins tests contrib bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q $(addsuffix /tests,$(CONTRIB))

lint: install
	$(BIN)/ruff check kernel plugins tests contrib bench

# mypy checks kernel/ and plugins/ as the package `statusflow` they install as: a tree of
# symbolic links (build/typecheck/statusflow) shows them to it under that name.
typecheck-tree:
	rm -rf build/typecheck && mkdir -p build/typecheck/statusflow
	for entry in kernel/*; do ln -s "$$PWD/$$entry" build/typecheck/statusflow/; done
	ln -s "$$PWD/plugins" build/typecheck/statusflow/plugins

typecheck: install typecheck-tree
	$(BIN)/mypy

# Load benchmark (issue 4): statusflow against an in-run group-commit baseline.
# Extra options: make bench BENCH_ARGS='--db sqlite --concurrency 64 --json out.json'
bench: install-bench
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-quick: install-bench
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)

bench-series: install-bench
	$(BIN)/python -m bench.run --series $(BENCH_ARGS)

# What actions cost (issue 14): the move path with and without actions, the drain of due runs.
bench-actions: install-bench
	$(BIN)/python -m bench.actions $(BENCH_ARGS)

# The board (issue 15): server-side render times of its heaviest pages, idle and under load.
bench-ui: install-bench
	$(BIN)/python -m bench.ui $(BENCH_ARGS)

# PNGs of every board page into docs/ui/ (Debian's chromium through Playwright).
screenshots: install
	$(BIN)/python -m tests.ui.screenshots

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
