# Two commands: `make test` and `make demo`. Each creates .venv when it is missing and installs
# the project with constraints.txt, which pins torch==2.13.0 so pip never pulls a CUDA build.
# Also: `make slow` (the tests marked slow, over ~30 s), `make lint` (ruff), `make bench`.
# The real-file tests fetch pynapple's test NWB files once into .cache/real-nwb with pip (offline
# or NEUROGEOM_NO_DOWNLOAD=1: they skip, saying why; NEUROGEOM_REAL_NWB_DIR moves the cache).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.neurogeom-installed
PYTEST_ARGS ?=

.PHONY: test demo slow lint bench setup clean browser

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt "torch==2.13.0"
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $(STAMP)

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)

# headless Chromium for the report's browser test (tests/test_demo.py): installed with apt-get
# when it is missing and apt-get can run (root, online); otherwise that test says it skipped
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  [ "$$(id -u)" = 0 ] && { apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { apt-get update -qq >/dev/null 2>&1 && \
	    apt-get install -y -qq chromium >/dev/null 2>&1; }; }; } || \
	  echo "note: chromium not installed; the report's browser test will be skipped"

slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# the recipe is not echoed, so the demo folder's path is the first line and the last
demo: $(STAMP)
	@$(VENV)/bin/neurogeom demo

bench: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,bench]"
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
