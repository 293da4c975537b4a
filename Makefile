# The README's commands. The first use creates .venv and installs securedd into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow fuzz bench lint clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,fl,audit]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/securedd demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# every fuzz target at 10,000 cases (FUZZ_EXAMPLES=N to change); the counts go to fuzz-report.json
FUZZ_EXAMPLES ?= 10000
fuzz: $(STAMP)
	SECUREDD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) SECUREDD_FUZZ_REPORT=fuzz-report.json \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz

bench: $(STAMP)
	$(BIN)/python benchmarks/coreset.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m mypy

# opt-in: Debian's headless chromium, for the test that renders the audit's HTML report (skipped without it)
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium)

clean:
	rm -rf $(VENV) demo-out out .pytest_cache fuzz-report.json
