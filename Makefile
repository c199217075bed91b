# make book [PROFILE=name] [CHAPTERS="adam bias"] [FORCE=1] [JOBS=n]
#                            run the chapters (all, or those named; unchanged ones are reused,
#                            FORCE=1 re-executes them) with a parameter profile, up to JOBS of
#                            them side by side (default: one per CPU), render the HTML
# make test                  ruff; unit tests; every chapter at its `smoke` profile, rendered with
#                            Sphinx warnings as errors; then tests/test_html.py on that build
# make archive               `make book`, then one zip of it for deposit (SHA-256 manifest)
# make lock                  refresh requirements.lock from pyproject.toml (pip-tools)
# make setup                 create .venv and install the locked versions (done by the above)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup.stamp
LOCK := requirements.lock
PROFILE ?= default
BUILD ?= _build
BOOK_FLAGS = --profile $(PROFILE) --build-dir $(BUILD) $(if $(CHAPTERS),--chapters $(CHAPTERS)) \
             $(if $(FORCE),--force) $(if $(JOBS),--jobs $(JOBS))

.PHONY: setup book test archive lock clean

setup: $(STAMP)

# Reinstalled only when the lock or pyproject.toml changes: first the exact versions of the
# lock, then the project itself without resolving anything again. The kernel `python3` is
# pointed at this environment's interpreter, so that chapters run with its packages.
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r $(LOCK)
	$(PY) -m pip install -e . --no-deps
	$(PY) -m ipykernel install --sys-prefix --name python3
	touch $@

book: setup
	$(PY) -m bea_book all $(BOOK_FLAGS)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest tests --ignore=tests/test_html.py
	$(PY) -m bea_book all --profile smoke --build-dir $(BUILD)/smoke
	if [ -f tests/test_html.py ]; then \
	  BEA_HTML_BUILD=$(BUILD)/smoke/html $(PY) -m pytest tests/test_html.py; fi

archive: book
	$(PY) -m bea_book archive --build-dir $(BUILD)

# After editing pyproject.toml: keeps the pins that still fit, resolves the rest
# (UPGRADE=1 re-resolves everything to the newest versions).
lock: setup
	$(PY) -m bea_book.lock $(if $(UPGRADE),--upgrade)

clean:
	rm -rf $(BUILD)
