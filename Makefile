# One command each: `make demo` sets everything up and runs the demo; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: demo test test-fast lint bench accuracy clean distclean

demo: $(STAMP)
	$(VENV)/bin/sopilot demo

# pytest's own exit status: 5 (nothing collected) fails too, so a wrong PYTEST_ARGS never passes.
# TEST_WORKERS processes (pytest-xdist), a test module each at a time (--dist loadfile: a module's
# live stack is started once): most tests wait on servers, daemons and browsers, not on the CPU.
TEST_WORKERS ?= 4
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Everything but the tests that start real servers or Dagster daemons (marked `integration`) and
# the slow ones: the quick loop while editing.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not integration and not slow" $(PYTEST_ARGS)

# Format, lint, types (ruff.toml, mypy.ini) and the Dagster definitions; .ci/run runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	@# the code location as Dagster's dg tooling loads it (defs/ folder, pyproject's [tool.dg]), in a throw-away instance
	d=$$(mktemp -d) && printf 'telemetry:\n  enabled: false\n' > $$d/dagster.yaml && \
	  VIRTUAL_ENV=$(abspath $(VENV)) DAGSTER_HOME=$$d $(VENV)/bin/dg check defs; rc=$$?; rm -rf $$d; exit $$rc

bench: $(STAMP)
	$(PY) bench/bench_dtw.py && $(PY) bench/bench_alignment.py && $(PY) bench/bench_ingest.py && $(PY) bench/bench_score.py && $(PY) bench/bench_search.py

# The cross-style accuracy benchmark (bench/README.md): every style, steps given and found.
# ACCURACY_ARGS="--embedder deep --styles slides,photo" narrows it.
accuracy: $(STAMP)
	$(PY) bench/accuracy.py $(ACCURACY_ARGS)

# torch first, pinned: 2.13.0 is the local CPU build; anything looser pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@# pdftoppm/pdftotext (poppler-utils) render the PDF reports in the tests
	command -v pdftoppm >/dev/null || (apt-get update -q && apt-get install -y -q poppler-utils) || \
	  echo "install poppler-utils (pdftoppm) for the PDF report tests"
	@# Debian's chromium: the browser the UI tests drive through Playwright (nothing is downloaded)
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium) || \
	  echo "install chromium for the UI tests (tests/api/test_ui.py)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,vjepa2,hands]'
	@# the hands embedder's model files: mediapipe's wheel ships them; its own deps (protobuf<5) clash with Dagster's
	$(PY) -m pip install -q --no-deps mediapipe==0.10.14
	touch $(STAMP)

# What the demo and the benchmarks write (the data dir, renders, caches); distclean also the venv.
clean:
	rm -rf data bench/out

distclean: clean
	rm -rf $(VENV)
