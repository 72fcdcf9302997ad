# SAR HPC Lab. Every target sets itself up: on a fresh machine one command is enough.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PRESET ?= seed
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: help venv test test-e2e test-cluster lint lab data report bench bench-perf clean

help:
	@echo "make report  - run the whole lab and write reports/informe.html"
	@echo "make test    - lint + unit tests + notebooks (tiny preset)"
	@echo "make test-e2e - every notebook in JupyterLab + headless Chromium (tiny preset)"
	@echo "make lab     - JupyterLab on notebooks/ (token auth on)"
	@echo "make data    - synthetic '$(PRESET)' stack + its intensity tiles under data/"
	@echo "make bench-perf - developer benchmarks (kernel, process, parallel, prep, start-up ratios) -> benchmarks/perf.csv"

$(STAMP): pyproject.toml labkit/_prepkernel.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check labkit tests data_prep benchmarks
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

$(VENV)/.e2e-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,e2e]'
	touch $@

# JupyterLab + headless Debian chromium (installed here if missing: needs root, as in CI)
test-e2e: $(VENV)/.e2e-installed
	test -x /usr/bin/chromium || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	$(BIN)/python -m pytest -q -m e2e tests/e2e

# A real one-node SLURM cluster on this machine (Debian's slurm-wlm and munge, installed here if
# missing: needs root, as in CI), all under a temporary folder and stopped on any exit: the job
# script data_prep/slurm/labkit_mpi.sbatch against sequential, ipyparallel engines under SLURM
test-cluster: $(STAMP)
	tests/cluster/run_slurm_test.sh

# Loopback only, token authentication on (a random token unless JUPYTER_TOKEN is set; the
# URL with the token is printed). Terminals get the venv first on PATH (labkit, mpiexec).
lab: $(STAMP) data
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter lab --notebook-dir=notebooks \
		--ServerApp.ip=127.0.0.1 --no-browser \
		--ServerApp.terminado_settings="shell_command=['/bin/bash']" \
		--IdentityProvider.token="$${JUPYTER_TOKEN:-$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(16))')}"

data: $(STAMP)
	$(BIN)/labkit data --preset $(PRESET)

report: $(STAMP)
	$(BIN)/labkit report --full --preset $(PRESET)

bench: $(STAMP)
	$(BIN)/labkit bench "$$($(BIN)/labkit data --preset $(PRESET))" --process --workers 1-$$($(BIN)/python -c 'import os; print(os.cpu_count())')

# developer script (benchmarks/README.md): builds its data once under data/ (seed, dates24,
# tiny presets; 24 random 2048² tiles; a 1 GiB SLC; ≈1 min), then times A vs B
# alternately in each group and prints the ratios (≈2 min on 2 cores)
bench-perf: $(STAMP)
	$(BIN)/python benchmarks/perf.py --out benchmarks/perf.csv

clean:
	rm -rf data results reports figures/*.png
	rm -rf benchmarks/__pycache__
	find benchmarks -maxdepth 1 -type f ! -name '*.py' ! -name README.md -delete
