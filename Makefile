# dcf_teach — the README's two commands and their parts.
#   make deck   build the demo study decks on the embedded default (sets up first); make deck DATA=folder: your own images
#   make test   notebooks clean, library in sync, every notebook runs, pytest (sets up first)
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# GPU users: make setup TORCH_SPEC="torch==2.13.0" TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
APT_PACKAGES ?= dataset-fashion-mnist chromium
PIP_QUIET := -q --disable-pip-version-check
QUIET_PIP_WARNINGS := grep -v "^WARNING: Location 'file" || true
export OMP_WAIT_POLICY ?= PASSIVE
export HF_HUB_OFFLINE ?= 1
export PYTHONHASHSEED ?= 0

.PHONY: setup system-deps jspsych deck-template test test-kernels reliability lint-nbs lint-imports sync-check nbtest pytest readme deck clean-venv

setup: $(VENV)/.stamp-setup

system-deps:
	@tools/system-deps.sh $(APT_PACKAGES)

$(VENV)/.stamp-setup: requirements.txt pyproject.toml tools/system-deps.sh
	@tools/system-deps.sh $(APT_PACKAGES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing $(TORCH_SPEC) first ..."
	$(BIN)/pip install $(PIP_QUIET) "$(TORCH_SPEC)" $(TORCH_PIP_ARGS) 2>&1 | $(QUIET_PIP_WARNINGS)
	@$(BIN)/python -W ignore -c "import torch; print('torch', torch.__version__)" 2>/dev/null | tee $(VENV)/torch-version.txt
	@echo "torch==$$($(BIN)/python -W ignore -c 'import torch; print(torch.__version__)' 2>/dev/null)" > $(VENV)/torch-constraint.txt
	@echo "installing pinned dependencies under the torch constraint ..."
	$(BIN)/pip install $(PIP_QUIET) -r requirements.txt -c $(VENV)/torch-constraint.txt 2>&1 | $(QUIET_PIP_WARNINGS)
	$(BIN)/pip install $(PIP_QUIET) --no-deps -e . 2>&1 | $(QUIET_PIP_WARNINGS)
	@$(BIN)/python -c "import torch, sys; v=torch.__version__; sys.exit(0 if '$(TORCH_SPEC)'.split('==')[-1] in v else 'torch changed during install: '+v)"
	@touch $@

# The quiz page's jsPsych files are vendored in dcf_teach/assets/jspsych (MIT); this refreshes them from npm (not run by setup).
jspsych:
	tools/vendor_jspsych.sh dcf_teach/assets/jspsych

lint-nbs: setup
	@$(BIN)/python tools/check_sync.py

# The deck template ships in the package as a copy of nbs/make_deck.ipynb (lint-nbs checks it and refreshes it too).
deck-template: setup
	$(BIN)/nbdev-clean --fname nbs/make_deck.ipynb
	cp nbs/make_deck.ipynb dcf_teach/assets/deck/make_deck.ipynb

# the layer contracts in pyproject.toml [tool.importlinter] (function-local imports count too)
lint-imports: setup
	@$(BIN)/lint-imports --no-cache

readme: setup
	@$(BIN)/python tools/make_readme.py

nbtest: setup
	cd nbs && OMP_NUM_THREADS=1 ../$(BIN)/nbdev-test --n-workers 2 --timing

pytest: setup
	OMP_NUM_THREADS=2 $(BIN)/pytest -q

test: setup
	@$(MAKE) --no-print-directory lint-nbs
	@$(MAKE) --no-print-directory lint-imports
	@$(MAKE) --no-print-directory nbtest
	@$(MAKE) --no-print-directory pytest
	@echo "make test: all checks passed"

# CI's second kernel set: torch's portable CPU kernels (no AVX2/AVX-512) instead of the ones this CPU picks, so a
# float check that holds on one CPU only fails here first (see F32_TOL in nbs/00_core.ipynb).
test-kernels: setup
	@ATEN_CPU_CAPABILITY=default $(BIN)/python -c "import torch; c = torch.backends.cpu.get_cpu_capability(); print('second kernel set:', c); assert c == 'DEFAULT', c"
	cd nbs && ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 ../$(BIN)/nbdev-test --n-workers 2 --timing
	ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=2 $(BIN)/pytest -q -m "not browser and not faults and not install" \
	  --ignore=tests/test_bad_input.py --ignore=tests/test_hostile_images.py \
	  --ignore=tests/test_teach.py   # input handling and stage bookkeeping: no float maths of their own
	@echo "make test-kernels: all checks passed under ATEN_CPU_CAPABILITY=default"

# The reliability figures: bad inputs, hostile images, corrupted weights and caches, SIGKILL at seeded moments.
reliability: setup
	$(BIN)/python tools/reliability.py $(RELIABILITY_ARGS)

# make deck DATA=path/to/images: your own two class folders (or a CSV manifest) through `dcf-teach teach` into
# TEACH_OUT (default teach/<name of DATA>); a rerun continues where it stopped. TEACH_ARGS adds options (--budget 60).
DATA ?=
TEACH_OUT ?= teach/$(basename $(notdir $(abspath $(DATA))))
TEACH_ARGS ?=
deck: setup
ifeq ($(strip $(DATA)),)
	@echo "building the demo study decks on the embedded default (decks/) and the site preview (_site/) ..."
	$(BIN)/dcf-teach deck --demo --decks decks --site _site
	@echo "look at: decks/*/deck.ipynb (executed decks), decks/*/media/ (GIFs, MP4s, overlays), _site/index.html (site)"
else
	$(BIN)/dcf-teach teach "$(DATA)" --out "$(TEACH_OUT)" $(TEACH_ARGS)
	@echo "look at: $(TEACH_OUT)/deck/deck.ipynb (the deck), $(TEACH_OUT)/site/index.html (site), $(TEACH_OUT)/explore.ipynb (explorer)"
endif

clean-venv:
	rm -rf $(VENV)
