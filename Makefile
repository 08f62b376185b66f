# Two commands from nothing: `make demo` (install, then the main job on the default spec)
# and `make test` (install, then the test suite). Everything lives in .venv/.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed
# Tests run in this many processes (pytest-xdist), each test file whole in one of them: most tests wait on
# one core (a command started, a file read), so two use this 2-core machine's both.
TEST_WORKERS ?= 2
PYTEST = $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile
# torch stays open-ended in pyproject.toml; constraints.txt picks the CPU wheel for this machine.
PIP_INSTALL = $(BIN)/python -m pip install --constraint constraints.txt

.PHONY: install demo test test-slow test-all test-keras-jax lint format bench pictures clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vggspec verify vgg16

test: $(STAMP)
	$(PYTEST)

test-slow: $(STAMP)
	$(PYTEST) -m slow

test-all: $(STAMP)
	$(PYTEST) -m "slow or not slow"

# The Keras test files under Keras on JAX (-k keras: every test of test_keras_backend.py, the keras cases of
# the training tests; their commands' subprocesses inherit KERAS_BACKEND)
KERAS_TESTS = tests/backends/test_keras_backend.py tests/training/test_finetune.py tests/training/test_feature_cache.py
test-keras-jax: $(STAMP)
	KERAS_BACKEND=jax $(PYTEST) -m "slow or not slow" -k keras $(KERAS_TESTS)

# ruff and mypy as configured in pyproject.toml (line length 120; mypy strict on the core)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The README's pictures (docs/pictures/), made by the commands they show
pictures: $(STAMP)
	$(BIN)/vggspec draw vgg16 --out docs/pictures/vgg16.svg
	$(BIN)/vggspec draw C D --out docs/pictures/C-vs-D.svg
	$(BIN)/vggspec verify vgg16 --backends keras,torch,onnx --plot docs/pictures/verify-vgg16.svg

clean:
	rm -rf $(VENV) build dist *.egg-info
