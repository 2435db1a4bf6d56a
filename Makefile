# imucap developer commands. Every target builds the virtual environment it needs from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch for the tests; only CPU wheel indexes carry the "+cpu" version, so
# pip can never fall back to a GPU build. Add PyTorch's CPU wheel index with TORCH_INDEX if
# your pip does not already see one. A torch you installed yourself (a CUDA build on a GPU
# machine, say) is kept.
TORCH ?= torch==2.13.0+cpu
TORCH_INDEX ?=

.PHONY: install test demo bench lint clean checkpoint speech-checkpoint

install:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)" $(TORCH_INDEX) || { \
	  echo "imucap: could not install $(TORCH), the CPU build of PyTorch: run again with TORCH_INDEX='--extra-index-url <PyTorch CPU wheel index>' (pytorch.org's install page gives it), or install torch into $(VENV) yourself"; exit 1; }

lint: install
	$(BIN)/python -m ruff check .

test: lint
	@bash scripts/install_system_packages.sh
	$(BIN)/python -m pytest

demo: install
	$(BIN)/imucap stream --device emulator:imusic11 --print --duration 10

bench: install
	$(BIN)/python benchmarks/bench_codec.py
	$(BIN)/python benchmarks/bench_serial_driver.py
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_sinks.py
	$(BIN)/python benchmarks/bench_live.py
	$(BIN)/python benchmarks/bench_convert.py
	$(BIN)/python benchmarks/bench_viewer.py
	$(BIN)/python benchmarks/bench_record.py
	$(BIN)/python benchmarks/bench_udp_array.py
	$(BIN)/python benchmarks/bench_ble.py
	$(BIN)/python benchmarks/bench_au_head.py
	$(BIN)/python benchmarks/bench_audio_features.py
	$(BIN)/python benchmarks/bench_visemes.py
	$(BIN)/python benchmarks/bench_speech.py

# Reproduces the shipped checkpoint models/pretrained/imusic11 (about an hour on two CPU cores).
checkpoint: install
	IMUCAP=$(BIN)/imucap bash scripts/make_checkpoint.sh

# Reproduces the shipped speech model models/pretrained/speech_en (about 25 minutes on two CPU
# cores; needs libespeak-ng: apt install libespeak-ng1).
speech-checkpoint: install
	IMUCAP=$(BIN)/imucap bash scripts/make_speech_checkpoint.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
