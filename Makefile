# hefsweep: everything installs from nothing into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := data/demo/.stamp

.PHONY: install sweep test test-fast test-reliability bench clean-stores train-demo browser-deps test-browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: a CPU wheel; an unpinned resolve would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# asteroid is the reference for the float-parity tests only; --no-deps keeps torch and avoids
	# torchaudio/pytorch-lightning (its import needs only asteroid-filterbanks and huggingface-hub).
	$(BIN)/pip install -q --no-deps asteroid==0.7.0 asteroid-filterbanks==0.4.0 'huggingface-hub<1'
	@touch $(STAMP)

install: $(STAMP)

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BROWSER_STAMP := $(VENV)/.browser-stamp

## Debian's Chromium for tests/browser (driven by Playwright; never `playwright install`: it downloads a browser
## and fails offline).
$(BROWSER_STAMP): $(STAMP)
	command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }
	$(BIN)/python -c "import playwright, optuna_dashboard"
	@touch $(BROWSER_STAMP)

browser-deps: $(BROWSER_STAMP)

$(DEMO): $(STAMP)
	$(BIN)/hefsweep demo-data --out data/demo
	@touch $(DEMO)

## The main job: a demo sweep on the embedded ONNX Runtime backend, tracked in mlruns/.
sweep: $(STAMP) $(DEMO)
	$(BIN)/hefsweep sweep search_spaces/demo.yaml

## The test suite: unit, end-to-end, contract, browser, reliability (bad inputs, fault injection, 4-worker load,
## untrusted input). `make test-reliability` runs the reliability suite alone; `bench/reliability.py` prints its counts.
test: $(STAMP) $(BROWSER_STAMP)
	$(BIN)/python -m pytest -q

test-reliability: $(STAMP)
	$(BIN)/python -m pytest -q tests/reliability

test-browser: $(BROWSER_STAMP)
	$(BIN)/python -m pytest -q tests/browser

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP) $(DEMO)
	$(BIN)/python bench/trial_cost.py

## Re-train the shipped demo checkpoint (about 10 minutes on 2 cores).
train-demo: $(STAMP)
	$(BIN)/python scripts/train_demo.py --out assets/demo_convtasnet.pt

clean-stores:
	rm -rf mlruns/mlflow.db mlruns/optuna.db mlruns/artifacts mlruns/cache
