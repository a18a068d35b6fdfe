"""The summarization work: framework-free, importable and testable without a server.

Nothing here imports BentoML's server machinery; `service.py` wires these pieces to HTTP.
"""
