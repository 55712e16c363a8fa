# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   create .venv, install, run the main job
#   make test   create .venv, install with test extras, run the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# CPU build of TensorFlow by default; `make EXTRAS=gpu,test,export test` on a GPU machine.
EXTRAS ?= cpu,test,export
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-slow lint bench clean

$(BIN)/imaging-tl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

demo: $(BIN)/imaging-tl
	$(BIN)/imaging-tl census sample_dicoms/ --out census.csv

test: $(BIN)/imaging-tl
	$(BIN)/ruff check imaging_tl tests benchmarks
	$(BIN)/pytest -q

test-slow: $(BIN)/imaging-tl
	$(BIN)/pytest -q -m slow

lint: $(BIN)/imaging-tl
	$(BIN)/ruff check imaging_tl tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
