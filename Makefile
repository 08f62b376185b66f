# Two commands from nothing: `make demo` (install, then the main job on the default spec)
# and `make test` (install, then the whole test suite). Everything lives in .venv/.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed
# torch stays open-ended in pyproject.toml; constraints.txt picks the CPU wheel for this machine.
PIP_INSTALL = $(BIN)/python -m pip install --constraint constraints.txt

.PHONY: install demo test test-slow test-all bench clean

$(STAMP): pyproject.toml constraints.txt backends/vggspec_keras/pyproject.toml backends/vggspec_torch/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e backends/vggspec_keras -e backends/vggspec_torch -e ".[all,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vggspec verify vgg16

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow"

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info backends/*/*.egg-info
