# The two commands of the README. Each one does all of its own set-up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA := data/default
# Most of the suite's time is spent in subprocesses (launches, signals, SLURM's scheduler),
# so two pytest workers cut it nearly in half on two cores; a test file never splits across workers.
TEST_WORKERS ?= 2

.PHONY: run test setup setup-dev data clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The stamp files make re-runs instant; they are rebuilt when pyproject.toml or setup.py changes.
$(VENV)/.installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

$(DATA)/.complete: | $(VENV)/.installed
	$(BIN)/python -m hn_data.make_default out=$(DATA)

data: $(DATA)/.complete

run: setup data
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no train/main.py $(ARGS)

test: setup-dev
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf outputs data/default
