"""The public contract: what `/summarize` answers (`responses`) and the OpenAPI document the
entry service serves (`openapi`), completed from the real models and errors of every package.
The top of the graph: it may import every package, and none imports it.

May import: http, observe, text, engines, batch, rag, jobs, auth, postgres.
"""
