# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   create .venv, install, run the main job
#   make test   create .venv, install with test extras, run the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# CPU build of TensorFlow by default; `make EXTRAS=gpu,test,export test` on a GPU machine.
EXTRAS ?= cpu,test,export
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-slow fuzz lint browser clean docs

$(BIN)/imaging-tl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

demo: $(BIN)/imaging-tl
	$(BIN)/imaging-tl run pipelines/demo.yaml

# the layers whose types are checked (the upper ones are checked where they are reached)
TYPED := imaging_tl/io imaging_tl/stages imaging_tl/data imaging_tl/evaluate imaging_tl/config

test: $(BIN)/imaging-tl browser
	$(BIN)/ruff check imaging_tl tests benchmarks
	$(BIN)/mypy $(TYPED)
	$(BIN)/pytest -q

fuzz: $(BIN)/imaging-tl  # fresh seed; IMAGING_TL_FUZZ_N=5000 IMAGING_TL_FUZZ_SEED=1 make fuzz
	$(BIN)/pytest -q -s -m slow tests/fuzz

test-slow: $(BIN)/imaging-tl
	$(BIN)/pytest -q -m slow

lint: $(BIN)/imaging-tl
	$(BIN)/ruff check imaging_tl tests benchmarks
	$(BIN)/mypy $(TYPED)

# The report test opens report.html in real headless Chromium (Debian's package). Best effort:
# without root or apt the browser test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
	  echo "chromium not installed: the report browser test will skip"

# the documentation site, offline, broken links and references failing the build
# (make EXTRAS=cpu,test,export,docs,notebook docs; the site lands in site/)
docs: $(BIN)/imaging-tl
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) build site *.egg-info
