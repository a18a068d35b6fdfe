"""ASGI plumbing that knows nothing of summaries: the body-size, media-type, concurrency and
error-shape `middleware`; the `gateway` through which the entry service calls the model service
(deadline, one retry, overload as 429, a dead model as a fast 503); and `drain`, which stops the
model worker last on shutdown.

May import: only the shared modules.
"""
