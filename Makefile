# Two entry points: `make demo` (install + run the pipeline on the bundled tasks) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build by default; a GPU user overrides, e.g. `make install TORCH="torch==2.13.0 --index-url ..."`.
TORCH ?= torch==2.13.0

.PHONY: install demo test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"

demo: install
	bash runs/demo.sh

# One thread per worker: torch, numba and BLAS each start a thread per core by default, and the suite's processes
# (pytest plus the train/predict subprocesses it launches) then fight each other for 2 cores: measured 401-654 s
# with default threads vs 94 s with one. Exported, so every subprocess the tests start inherits it.
THREADS_1 := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1
# Two pytest-xdist workers of one thread each fill 2 cores; whole files go to one worker (--dist loadfile) so a
# module's expensive fixtures (trained checkpoints, built wheels) are made once. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

test: install
	$(THREADS_1) $(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist loadfile

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf out build dist *.egg-info .pytest_cache
