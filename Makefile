# Every target installs first when needed: a clean clone needs only python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8765
ARGS   ?=
# load-test knobs: make load USERS=500 DURATION=120s
USERS    ?= 200
SPAWN    ?= 50
DURATION ?= 60s

.PHONY: install serve demo test lint fmt bench load load-reconnect load-distributed soak clean

install: $(STAMP)

# Re-install only when the project definition changes, so repeated targets are fast.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,load]'
	touch $(STAMP)

serve: install
	$(BIN)/infoway-mock serve --host $(HOST) --port $(PORT) $(ARGS)

demo: install
	$(BIN)/python examples/demo.py --host $(HOST) --port $(PORT) $(ARGS)

test: install
	$(BIN)/python -m pytest -q $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# dead code; tests/dead_code_allowlist.py names what frameworks and users call
	$(BIN)/vulture

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m loadtests.bench $(ARGS)

load: install
	$(BIN)/python -m loadtests.run --users $(USERS) --spawn-rate $(SPAWN) --run-time $(DURATION) $(ARGS)

load-reconnect: install
	$(BIN)/python -m loadtests.run --scenario flaky-network --users $(USERS) --spawn-rate $(SPAWN) --run-time $(DURATION) $(ARGS)

load-distributed: install
	$(BIN)/python -m loadtests.run --workers 2 --users $(USERS) --spawn-rate $(SPAWN) --run-time $(DURATION) $(ARGS)

# 10,000 subscribed connections for 60 s against 2 workers behind HAProxy -> reports/soak.json
# (make soak ARGS="--connections 2000 --workers 0" for one process without HAProxy)
soak: install
	$(BIN)/python -m loadtests.soak $(ARGS)

clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache .hypothesis *.egg-info
