# hefsweep: everything installs from nothing into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := data/demo/.stamp

.PHONY: install sweep test test-fast test-reliability bench clean-stores train-demo browser-deps test-browser dfc-venv

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

## The DFC's own environment, as users have it (real_dfc/dfc_env_requirements.txt: DFC 3.33 on Python 3.10 with these
## pins), with the project's fake SDK (tests/fakes) on its path instead of the proprietary wheel. The Hailo tests run
## their DFC stages in it (backend option python: .venv-dfc/bin/python). Python 3.10 where it can be found, else 3.11.
DFC_VENV  := .venv-dfc
DFC_STAMP := $(DFC_VENV)/.installed-stamp
DFC_PINS  := numpy==1.26.4 onnx==1.16.0 onnxruntime==1.18.0 protobuf==3.20.3 pydantic==2.0.2
DFC_PYTHON ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10.*/bin/python3.10 /usr/bin/python3.10 python3.11 $(PYTHON); do \
	"$$p" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null && { echo "$$p"; break; }; done)

$(DFC_STAMP): Makefile
	@test -n "$(DFC_PYTHON)" || { echo "no Python >= 3.10 found for $(DFC_VENV)"; exit 1; }
	rm -rf $(DFC_VENV)
	$(DFC_PYTHON) -m venv $(DFC_VENV)
	$(DFC_VENV)/bin/pip install -q $(DFC_PINS)
	echo "$(CURDIR)/tests/fakes" > "$$($(DFC_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/hefsweep-fake-dfc.pth"
	$(DFC_VENV)/bin/python -c "import sys, numpy, onnx, hailo_sdk_client; print('$(DFC_VENV):', sys.version.split()[0], 'numpy', numpy.__version__, 'onnx', onnx.__version__, 'DFC (fake)', hailo_sdk_client.__version__)"
	@touch $(DFC_STAMP)

dfc-venv: $(DFC_STAMP)

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
test: $(STAMP) $(BROWSER_STAMP) $(DFC_STAMP)
	$(BIN)/python -m pytest -q

test-reliability: $(STAMP) $(DFC_STAMP)
	$(BIN)/python -m pytest -q tests/reliability

test-browser: $(BROWSER_STAMP)
	$(BIN)/python -m pytest -q tests/browser

## The inner loop (~70 s on 2 cores): unit and contract tests, no end-to-end sweeps, no browser, no reliability suite.
test-fast: $(STAMP) $(DFC_STAMP)
	$(BIN)/python -m pytest -q -m "not slow" --ignore=tests/reliability --ignore=tests/browser

## Every benchmark; each prints its figure last, as one line `name: value (aim ...)`. bench/scaling.py says so and
## skips where no PostgreSQL server answers at 127.0.0.1:5432. Figures taken on a busy machine are noise.
bench: $(STAMP) $(DEMO)
	$(BIN)/python bench/trial_cost.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/cache.py
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/reliability.py
	$(BIN)/python bench/search_efficiency.py
	$(BIN)/python bench/dfc_passes.py
	$(BIN)/python bench/tiling.py
	$(BIN)/python bench/worker_rss.py
	$(BIN)/python bench/peer_quark.py    # makes .venv-quark (amd-quark 0.13 and its pins) on first use

## Re-train the shipped demo checkpoint (about 10 minutes on 2 cores).
train-demo: $(STAMP)
	$(BIN)/python scripts/train_demo.py --out assets/demo_convtasnet.pt

clean-stores:
	rm -rf mlruns/mlflow.db mlruns/optuna.db mlruns/artifacts mlruns/cache
