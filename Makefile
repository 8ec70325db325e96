# Everything goes through a local virtual environment so that a fresh machine with only
# Python, pip and git can run `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,plot,serve,mpi]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/scratchlm run

# 2 workers x 1 BLAS thread: no oversubscription. loadgroup keeps the tests of test_serve.py on one
# worker (one trained model, one server); xdist ignores --dist when it comes from addopts.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/train_step.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
