# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED := contracts client telemetry settings persistence crypto auth messaging runtime devstack
SERVICES := identity consent audit
PACKAGES := $(foreach p,$(SHARED),-e shared/$(p)) $(foreach s,$(SERVICES),-e services/$(s))
SOURCES := shared services tests benchmarks

.PHONY: install run demo test lint bench asyncapi clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python constraints.txt requirements-dev.txt shared/*/pyproject.toml services/*/pyproject.toml
	$(BIN)/pip install --quiet -c constraints.txt -r requirements-dev.txt $(PACKAGES)
	touch $(STAMP)

# The AsyncAPI parser the contract tests validate docs/asyncapi with (node and npm needed).
NODE_TOOL := tools/asyncapi
NODE_STAMP := $(NODE_TOOL)/node_modules/.package-lock.json

$(NODE_STAMP): $(NODE_TOOL)/package.json $(NODE_TOOL)/package-lock.json
	cd $(NODE_TOOL) && npm ci --no-audit --no-fund --loglevel=error

install: $(STAMP) $(NODE_STAMP)

run: install
	$(BIN)/python -m moment_devstack run

demo: install
	$(BIN)/python -m moment_devstack demo

test: install
	$(BIN)/python -m moment_devstack check-postgres
	$(BIN)/python -m pytest -p no:cacheprovider

lint: install
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy shared services benchmarks

bench: install
	$(BIN)/python -m benchmarks

asyncapi: install
	$(BIN)/python -m moment_devstack asyncapi --write

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache $(NODE_TOOL)/node_modules
