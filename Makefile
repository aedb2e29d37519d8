# Pantau: `make demo` runs everything on a laptop; `make test` runs every test.
# Both create the virtual environment on first use.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench venv lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

## Broker, worker and simulator on this machine; Ctrl-C stops, DURATION=N stops after N s.
demo: $(STAMP)
	$(BIN)/pantau demo $(if $(DURATION),--duration $(DURATION),)

## Unit tests, doctests, integration tests on the embedded broker, promtool tests.
test: $(STAMP)
	$(BIN)/python -m pytest -q

## Benchmarks: prints figures and ratios measured side by side.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pantau *.egg-info
