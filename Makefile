# The README's two commands: `make report` and `make test`.
# Outside an active virtual environment both create .venv and install poisonlab into it.
PYTHON ?= python3
TORCH ?= torch==2.13.0

ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := .venv
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.poisonlab-installed

PROFILE ?= full
ENGINE ?= auto

.PHONY: report test install bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[test]"
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

report: $(STAMP)
	$(BIN)/poisonlab render --engine $(ENGINE) --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_chapters.py

lint: $(STAMP)
	$(BIN)/python -m poisonlab.lint

clean:
	rm -rf _preview _book .cache figures/*/
