# imucap developer commands. Every target builds the virtual environment it needs from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test demo bench lint clean

install:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet -e ".[test]"

lint: install
	$(BIN)/python -m ruff check .

test: lint
	$(BIN)/python -m pytest

demo: install
	$(BIN)/imucap stream --device emulator:imusic11 --print --duration 10

bench: install
	$(BIN)/python benchmarks/bench_codec.py
	$(BIN)/python benchmarks/bench_serial_driver.py
	$(BIN)/python benchmarks/bench_simulator.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
