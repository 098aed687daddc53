# Every target installs what it needs: a fresh Debian machine needs only python3 and root.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements/dev.lock pyproject.toml | sha256sum | cut -c1-12)

.PHONY: env system up demo test unit integration bench lint typecheck lock clean

# Debian packages the Python environment cannot bring: Pango and fonts for WeasyPrint
# (PDF reports), poppler-utils for the report tests' PDF pages as PNG, Chromium and its
# driver for the console's browser tests (Selenium), QEMU's user mode for the tests
# that decide on other CPUs.
SYSTEM_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils chromium chromium-driver qemu-user-static
system:
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES); }

# The project's Python environment, installed from the committed hashed lock:
# pip resolves nothing, it only checks hashes.
env: system $(STAMP)
$(STAMP): requirements/dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "replay needs Python 3.11, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements/dev.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

# Docker engine, local registry and the offline base image (each reused when present).
up: env
	$(BIN)/replay up

demo: up
	$(BIN)/python examples/credit/demo.py

test: up lint
	$(BIN)/pytest -q -ra --durations=30 tests

unit: env
	$(BIN)/pytest -q tests/unit

integration: up
	$(BIN)/pytest -q -ra tests/integration

# The benchmark's baseline (DiCE) has its own lock: tests never install it.
bench: up
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements/bench.lock
	$(BIN)/python bench/run.py

lint: env typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy over the package as it is installed: cli/, images/ and manifests/ are
# replay.cli, replay.images and replay.manifests (see package-dir in pyproject.toml).
TYPECHECK := build/typecheck
typecheck: env
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/replay
	for item in replay/*; do ln -s $(CURDIR)/$$item $(TYPECHECK)/$$item; done
	for part in cli images manifests; do ln -s $(CURDIR)/$$part $(TYPECHECK)/replay/$$part; done
	$(BIN)/mypy --cache-dir build/mypy-cache $(TYPECHECK)/replay

# Re-lock the project's own dependencies (when pyproject.toml or bench.in change).
lock: env
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --extra dev \
	  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
	  -c requirements/resolver-hints.txt -o requirements/dev.lock pyproject.toml
	cd requirements && ../$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host -o bench.lock bench.in

clean:
	rm -rf $(VENV) .replay build *.egg-info
