# make book [PROFILE=name]   execute every chapter with a parameter profile, render the HTML
# make test                  unit tests, then every chapter at its `smoke` profile, rendered
#                            with Sphinx warnings as errors
# make setup                 create .venv and install the project (done by the two above)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup.stamp
PROFILE ?= default
BUILD ?= _build

.PHONY: setup book test clean

setup: $(STAMP)

# Reinstalled only when pyproject.toml changes; the kernel `python3` is pointed at this
# environment's interpreter, so that chapters run with its packages.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[book,dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3
	touch $@

book: setup
	$(PY) -m bea_book all --profile $(PROFILE) --build-dir $(BUILD)

test: setup
	$(PY) -m pytest tests
	$(PY) -m bea_book all --profile smoke --build-dir $(BUILD)/smoke

clean:
	rm -rf $(BUILD)
