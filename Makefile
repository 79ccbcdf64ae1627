# Two entry points: `make demo` and `make test`. Both create/refresh .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rb2v-installed

.PHONY: demo test venv clean

venv: $(STAMP)

# The CPU wheel of torch is installed on its own, pinned, before the package: the package's
# `torch>=2.1` is then satisfied and no CUDA build is ever downloaded. PyPI's Linux torch is the
# CUDA build; the `+cpu` one comes from pip's own indexes or find-links, else from PyTorch's CPU index.
TORCH := torch==2.13.0+cpu
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)" --index-url $(TORCH_CPU_INDEX)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m rb2v.demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder

clean:
	rm -rf $(VENV) demo-out
