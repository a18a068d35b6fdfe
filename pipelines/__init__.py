"""The summarization work: framework-free, importable and testable without a server.

One subpackage per capability; the shared modules at this level (`settings`, `errors`, `styles`)
are the vocabulary every package uses. Imports between packages go one way, down this list, and
each package's docstring names the packages it may import (`tests/pipelines/test_layers.py`
fails on any other):

    api       the public contract: response models and the OpenAPI document
    auth      bearer tokens: the token file, the ASGI middleware, the CLI
    jobs      durable server jobs: store, database, runner, the /jobs app
    rag       the knowledge index: documents, snapshots, vector stores, retrieval, CLI
    batch     many documents at once: the shared core, CLI, backends, output, Ray, in-process
    engines   the models: the item contract, extractive, abstractive, encoder, batching
    text      what happens to text before a model: normalize, redact, NER, sentences, chunks
    observe   metrics, traces, logs, the per-request log record
    http      ASGI plumbing that knows nothing of summaries: limits, the model-service gateway, drain
    postgres  the state replicas share: the database URL and its faults, the versioned schema

Nothing here imports BentoML's server machinery or `service.py`; `service.py` wires these
pieces to HTTP.
"""
