"""One exception root that knows its HTTP status.

    SummarizerError (500)        anything we raise on purpose
    ├── BadInput (400)           the request is wrong; the message says how
    │   ├── UnknownStyle (400)   the X-Summary-Style header names no style; lists the valid ones
    │   └── rag.documents.InvalidDocument  a bad document id or metadata
    ├── rag.documents.KnowledgeIndexError (503)  built with another encoder, or damaged
    │   ├── rag.documents.IndexMismatch
    │   └── rag.documents.IndexCorrupt
    ├── NotFound (404)           no such job (or other named resource)
    ├── Conflict (409)           the resource is not in a state that allows this (cancel a finished job)
    ├── InputTooLarge (413)      text or body over the configured limit
    ├── Overloaded (429)         shed at once, with Retry-After, instead of queueing
    ├── NotReady (503)           the model service is not up (yet), with Retry-After
    │   └── postgres.connection.DatabaseUnavailable  PostgreSQL does not answer (jobs, RAG)
    ├── NotServedHere (503)      a live route on a replica that only runs jobs (SUMMARIZER_ROLE=jobs)
    ├── UpstreamTimeout (504)    the model did not answer within the request timeout
    ├── ModelError (500)         the model failed on this item; message is safe to show
    ├── StorageError (503)       the volume under the job store or the index failed (I/O error)
    │   ├── StorageFull (507)    no space left: nothing was stored; free space, then retry
    │   └── StorageReadOnly (507)  the volume is read-only: nothing was stored
    ├── jobs.database.JobStoreCorrupt (503)  the job store's database is damaged
    └── ConfigError (-)          bad configuration, raised at start-up only

Errors become JSON responses in `service.py` (and, for the `/jobs` app, in `pipelines.jobs.app`),
both through `to_payload` and `headers`; a 5xx body never echoes internals, only the class's
public message. `retry_later` marks the errors whose response says when to come back.
"""

from __future__ import annotations

import errno


class SummarizerError(Exception):
    status_code: int = 500
    public_message: str | None = "internal error"
    retry_later: bool = False  # the same call may succeed soon: the response says when (Retry-After)

    def __init__(self, message: str = "") -> None:
        super().__init__(message or (self.public_message or ""))
        self.message = message or (self.public_message or "")

    def to_payload(self) -> dict[str, object]:
        """The JSON body clients see. 5xx keep a fixed message unless the class allows detail."""
        message = self.message if self.status_code < 500 or self.public_message is None else self.public_message
        return {"error": {"type": type(self).__name__, "message": message, "status": self.status_code}}

    def headers(self, retry_after_s: int) -> dict[str, str]:
        """The response headers this error carries wherever it becomes HTTP."""
        return {"Retry-After": str(retry_after_s)} if self.retry_later else {}


class BadInput(SummarizerError):
    status_code = 400
    public_message = None


class UnknownStyle(BadInput):
    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__(f"unknown style {name!r}; valid styles: {', '.join(sorted(valid))}")
        self.valid = sorted(valid)


class NotFound(SummarizerError):
    status_code = 404
    public_message = None


class Conflict(SummarizerError):
    status_code = 409
    public_message = None


class InputTooLarge(SummarizerError):
    status_code = 413
    public_message = None


class Overloaded(SummarizerError):
    status_code = 429
    public_message = None
    retry_later = True


class NotReady(SummarizerError):
    status_code = 503
    public_message = "the model service is not ready; retry shortly"
    retry_later = True


class NotServedHere(SummarizerError):
    """A load balancer sent live traffic to a job replica: retrying here will not help."""

    status_code = 503
    public_message = "this replica only runs jobs (SUMMARIZER_ROLE=jobs); send live requests to the live replicas"


class UpstreamTimeout(SummarizerError):
    status_code = 504
    public_message = None


class ModelError(SummarizerError):
    status_code = 500
    public_message = "the model failed on this document"


class StorageError(SummarizerError):
    """The server could not write its own state (job store, index). 507 when it is sure the volume
    is full or read-only (the server lacks storage: retrying elsewhere or soon will not help until
    an operator acts), else 503. Messages name the store and the fault, never a path: the log
    has the path."""

    status_code = 503
    public_message = None


class StorageFull(StorageError):
    status_code = 507


class StorageReadOnly(StorageError):
    status_code = 507


def storage_error(exc: OSError, what: str) -> StorageError:
    """Translate an OSError met writing `what` ("the job store", "the knowledge index")."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"{what} cannot store anything: its volume is full; free space, then retry")
    if exc.errno == errno.EROFS:
        return StorageReadOnly(f"{what} cannot store anything: its volume is read-only")
    return StorageError(f"{what} could not read or write its volume ({exc.strerror or type(exc).__name__})")


class ConfigError(SummarizerError):
    """Raised while loading configuration; never reaches a client."""


_BY_NAME: dict[str, type[SummarizerError]] = {
    cls.__name__: cls
    for cls in (SummarizerError, BadInput, UnknownStyle, NotFound, Conflict, InputTooLarge, Overloaded, NotReady, UpstreamTimeout, ModelError)
}


def from_payload(kind: str, message: str) -> SummarizerError:
    """Rebuild an error that crossed the service boundary as plain data (the batch API's outcome)."""
    cls = _BY_NAME.get(kind, ModelError)
    if cls is UnknownStyle:
        cls = BadInput
    err = cls.__new__(cls)
    SummarizerError.__init__(err, message)
    return err
