# Each target makes its own virtual environment, so both work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch 2.13.0 is the CPU build these machines carry; other versions are GB-sized downloads.
TORCH ?= torch==2.13.0

.PHONY: demo test test-fast test-gpu venv clean

$(VENV)/.installed-%: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[$*]"
	touch $@

demo: $(VENV)/.installed-judge
	$(VENV)/bin/unitoken-eval run --suite smoke --out results/runs/smoke-demo --resume

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

# The edit loop: everything but the tests marked slow (seconds each on 2 cores) or extra (optional installs).
test-fast: $(VENV)/.installed-test
	$(PY) -m pytest -q -m "not slow and not extra"

# The CUDA paths of every adapter family (tests marked gpu); needs a CUDA machine.  bench/gpu_tests.sh runs
# the whole suite there and writes the record kept under bench/records/.
test-gpu: $(VENV)/.installed-test
	$(PY) -m pytest -q -m gpu

clean:
	rm -rf $(VENV) results/runs/smoke-demo
