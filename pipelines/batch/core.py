"""Many documents at once: the one core that `/batch`, the job runner, the CLI and Ray share.

preprocess  resolve each document's style, normalize and redact it (plain Python, per document)
forward     one model call per chunk of prepared items (the model service batches them)
postprocess one result per document, in input order: its summary, or that document's own error

A document's failure (bad style, empty text, too large, the model failed on it) is its result;
it never fails the others. The model is passed in as an async function, so this stays free of
BentoML: the entry service passes its model-service client, the CLI and Ray the in-process engine.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipelines.engines.contract import ItemOutcome, SummaryItem
from pipelines.engines.grouping import BatchContractError, check_outputs
from pipelines.errors import BadInput, InputTooLarge, ModelError, NotReady, Overloaded, SummarizerError, UpstreamTimeout, from_payload
from pipelines.observe.stages import observe_document
from pipelines.styles import Style, StyleRegistry

if TYPE_CHECKING:  # presidio and spaCy take seconds to import; the CLI's --url mode never needs them
    from pipelines.text.prepare import InputPipeline, PreparedText

Summarize = Callable[[list[SummaryItem]], Awaitable[list[ItemOutcome]]]
# Small chunks let the model start on the first documents while the rest are still being
# redacted; the model service's batcher merges concurrent chunks into real batches anyway.
CHUNK_DOCUMENTS = 8
# Worth trying again later: the service was busy, restarting or slow, not the document's fault.
TRANSIENT_ERRORS: tuple[type[SummarizerError], ...] = (Overloaded, NotReady, UpstreamTimeout)


class BatchDocument(BaseModel):
    """One input document: a `/batch` list entry, or one line of a JSONL job file."""

    # Validation messages must never quote a document's text (it may hold PII).
    model_config = ConfigDict(hide_input_in_errors=True)

    id: str = Field(min_length=1, max_length=256)
    text: str
    style: str | None = None  # else the request's X-Summary-Style header, else the default
    format: Literal["auto", "text", "html"] = "auto"
    metadata: dict[str, Any] | None = None  # echoed in the result, never read

    @field_validator("metadata")
    @classmethod
    def _serializable(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Metadata is written back out; a lone surrogate would fail then, for the whole batch."""
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except (TypeError, ValueError, UnicodeEncodeError):
            raise ValueError("metadata must be JSON of valid Unicode text") from None
        return value


class ErrorBody(BaseModel):
    type: str
    message: str
    status: int


class BatchResult(BaseModel):
    """One output line: `summary` and its details, or `error`; `id` always."""

    id: str
    summary: str | None = None
    style: str | None = None
    engine: str | None = None
    model: str | None = None
    input_words: int | None = None
    summary_words: int | None = None
    chunks: int | None = None
    redactions: dict[str, int] | None = None
    error: ErrorBody | None = None
    metadata: dict[str, Any] | None = None
    line: int | None = None  # the input line, for job and CLI results

    @classmethod
    def failed(cls, doc_id: str, err: SummarizerError, metadata: dict[str, Any] | None = None) -> BatchResult:
        return cls(id=doc_id, error=ErrorBody.model_validate(err.to_payload()["error"]), metadata=metadata)

    @property
    def transient(self) -> bool:
        return self.error is not None and self.error.type in {cls.__name__ for cls in TRANSIENT_ERRORS}

    def to_line(self) -> str:
        return self.model_dump_json(exclude_none=True)


def check_batch(docs: Sequence[BatchDocument], max_documents: int) -> None:
    """Whole-request checks of a `/batch` call: its size, and ids unique so results can be matched."""
    if len(docs) > max_documents:
        raise InputTooLarge(
            f"{len(docs)} documents in one request; the limit is {max_documents} (SUMMARIZER_BATCH_MAX_DOCUMENTS); "
            "split the batch, or submit a job (POST /jobs) for large corpora"
        )
    counts = Counter(d.id for d in docs)
    duplicates = sorted(doc_id for doc_id, n in counts.items() if n > 1)
    if duplicates:
        raise BadInput(f"document ids must be unique in a request; repeated: {', '.join(map(repr, duplicates[:10]))}")


def unavailable(results: Sequence[BatchResult]) -> SummarizerError | None:
    """The error to answer a whole request with when not one document got through for a transient
    reason (overload, restart, timeout): the client should retry the call, not read 64 errors."""
    if results and all(r.transient for r in results) and results[0].error is not None:
        return from_payload(results[0].error.type, results[0].error.message)
    return None


class InvalidLine(BadInput):
    """A JSONL line that is not a document; the message names the line."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def parse_line(raw: str | bytes, line: int) -> BatchDocument:
    """One JSONL line as a document, or InvalidLine saying what is wrong (never quoting the text)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidLine(line, f"not valid JSON ({type(exc).__name__} at column {getattr(exc, 'colno', '?')})") from None
    except RecursionError:
        raise InvalidLine(line, "not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise InvalidLine(line, f"must be a JSON object with id and text, got {type(data).__name__}")
    try:
        return BatchDocument.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors())
        raise InvalidLine(line, problems) from None


@dataclass
class PreparedDocument:
    document: BatchDocument
    style: Style
    text: PreparedText

    @property
    def item(self) -> SummaryItem:
        return SummaryItem(text=self.text.text, style=self.style)


class DocumentPreparer:
    """Per-document preprocess: style, normalization, redaction. CPU work: call it in a thread."""

    def __init__(self, inputs: InputPipeline, styles: StyleRegistry) -> None:
        self.inputs = inputs
        self.styles = styles

    def prepare(self, doc: BatchDocument, default_style: str | None = None) -> PreparedDocument | SummarizerError:
        try:
            style = self.styles.resolve(doc.style or default_style)
            return PreparedDocument(doc, style, self.inputs.prepare(doc.text, doc.format))
        except SummarizerError as err:
            return err

    def prepare_all(
        self, docs: Sequence[BatchDocument], default_style: str | None = None
    ) -> list[PreparedDocument | SummarizerError]:
        return [self.prepare(doc, default_style) for doc in docs]


def assemble(
    prepared: Sequence[PreparedDocument | SummarizerError],
    docs: Sequence[BatchDocument],
    outcomes: Sequence[ItemOutcome | SummarizerError],
) -> list[BatchResult]:
    """Postprocess: merge per-document preparation errors with model outcomes, in input order."""
    pending = iter(outcomes)
    results = []
    for doc, prep in zip(docs, prepared, strict=True):
        if isinstance(prep, SummarizerError):
            results.append(BatchResult.failed(doc.id, prep, doc.metadata))
            continue
        outcome = next(pending)
        if isinstance(outcome, SummarizerError):
            results.append(BatchResult.failed(doc.id, outcome, doc.metadata))
        elif outcome.result is None:
            err = from_payload(outcome.error_type or "ModelError", outcome.error_message or "")
            results.append(BatchResult.failed(doc.id, err, doc.metadata))
        else:
            r = outcome.result
            results.append(
                BatchResult(
                    id=doc.id, summary=r.summary, style=prep.style.name, engine=outcome.engine, model=outcome.model,
                    input_words=r.input_words, summary_words=r.summary_words, chunks=r.chunks,
                    redactions=prep.text.redactions, metadata=doc.metadata,
                )  # fmt: skip
            )
    return results


async def _call_chunk(summarize: Summarize, items: list[SummaryItem]) -> list[ItemOutcome | SummarizerError]:
    """One model call; a failure of the call itself (overload, timeout) becomes each item's error."""
    try:
        outcomes = check_outputs(items, await summarize(items), "model service")
    except SummarizerError as err:
        return [err] * len(items)
    except BatchContractError:  # one outcome per item, or none can be trusted to be the right one
        return [ModelError()] * len(items)
    return [ItemOutcome.model_validate(o) for o in outcomes]


async def summarize_documents(
    preparer: DocumentPreparer,
    docs: Sequence[BatchDocument],
    summarize: Summarize,
    default_style: str | None = None,
    chunk_documents: int = CHUNK_DOCUMENTS,
) -> list[BatchResult]:
    """Summarize `docs`, one result each, in order. Chunk k+1 is prepared while chunk k is in the model."""
    prepared: list[PreparedDocument | SummarizerError] = []
    calls = []
    for start in range(0, len(docs), chunk_documents):
        chunk = docs[start : start + chunk_documents]
        ready = await asyncio.to_thread(preparer.prepare_all, chunk, default_style)
        prepared += ready
        items = [p.item for p in ready if isinstance(p, PreparedDocument)]
        if items:
            calls.append(asyncio.ensure_future(_call_chunk(summarize, items)))
    outcomes = [outcome for chunk_outcomes in await asyncio.gather(*calls) for outcome in chunk_outcomes]
    results = assemble(prepared, docs, outcomes)
    for r in results:
        observe_document(r.style, r.engine, r.summary_words, r.error is None)
    return results
