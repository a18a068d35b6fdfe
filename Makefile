# Two commands do all set-up on a fresh clone:
#   make serve   create/reuse .venv, install pinned deps, import the default model, serve on :3000
#   make test    the same set-up, then the type check and the whole test suite
# Also: make dev (serve, restarting on code changes), make bento (build the Bento, offline),
#       make replicas (N replicas on one PostgreSQL database, ports PORT, PORT+1, ...),
#       make docs (the docs site, offline, into site/; docs-serve previews it on :8000).
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

.PHONY: venv models serve dev replicas bento docs docs-serve test typecheck clean

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-ray.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: it comes from the CPU wheel on disk, never a CUDA download.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements-dev.txt
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

test: venv typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache site
