"""The batch core: line parsing, whole-request checks, and summarize_documents' order and errors."""

from __future__ import annotations

import asyncio
import json

import pytest

from pipelines.batch.core import (
    BatchDocument,
    BatchResult,
    DocumentPreparer,
    InvalidLine,
    check_batch,
    parse_line,
    summarize_documents,
    unavailable,
)
from pipelines.engines.contract import ItemOutcome, SummaryItem, SummaryResult
from pipelines.errors import (
    BadInput,
    InputTooLarge,
    ModelError,
    NotReady,
    Overloaded,
    SummarizerError,
    UnknownStyle,
    UpstreamTimeout,
)
from pipelines.settings import Settings
from pipelines.styles import StyleRegistry
from pipelines.text.prepare import InputPipeline

SECRET = "jane.doe.secret@example.com"
TIMEOUT_S = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def preparer() -> DocumentPreparer:
    # Redaction on: the model must only ever see redacted text.
    return DocumentPreparer(InputPipeline.from_settings(Settings(max_input_chars=2000)), StyleRegistry.load())


def first_sentence(text: str) -> str:
    return text.split(". ")[0].rstrip(".") + "."


class FakeModel:
    """The model step: the first sentence of each item, a ModelError outcome for items that say
    BROKEN, and Overloaded raised for a whole call that holds an item saying OVERLOAD."""

    def __init__(self, delays: list[float] | None = None) -> None:
        self.calls: list[list[SummaryItem]] = []
        self.delays = delays or []

    async def __call__(self, items: list[SummaryItem]) -> list[ItemOutcome]:
        call = len(self.calls)
        self.calls.append(items)
        if call < len(self.delays):
            await asyncio.sleep(self.delays[call])
        if any("OVERLOAD" in item.text for item in items):
            raise Overloaded("the model queue is full")
        outcomes = []
        for item in items:
            if "BROKEN" in item.text:
                outcomes.append(ItemOutcome.of(ModelError("cuda said no"), "fake", "fake:1"))
            else:
                summary = first_sentence(item.text)
                words = len(item.text.split())
                outcomes.append(ItemOutcome.of(SummaryResult(summary=summary, input_words=words, summary_words=len(summary.split())), "fake", "fake:1"))
        return outcomes


def doc(i: int, text: str | None = None, **fields: object) -> BatchDocument:
    body = text if text is not None else f"Document {i} reports on item {i}. It has a second sentence."
    return BatchDocument.model_validate({"id": f"doc-{i}", "text": body, **fields})


# -- parse_line --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (f'{{"id": "a", "text": "write to {SECRET}"', "not valid JSON"),
        (f'["a", "{SECRET}"]', "must be a JSON object with id and text, got list"),
        (f'"{SECRET}"', "got str"),
        (f'{{"id": "a", "body": "{SECRET}"}}', "text: Field required"),
        (f'{{"text": "{SECRET}"}}', "id: Field required"),
        (f'{{"id": "", "text": "{SECRET}"}}', "id: String should have at least 1 character"),
        (f'{{"id": "a", "text": {{"nested": "{SECRET}"}}}}', "text: Input should be a valid string"),
        (f'{{"id": "a", "text": "{SECRET}", "format": "{SECRET}"}}', "format: Input should be"),
        (f'{{"id": "a", "text": "x", "metadata": "{SECRET}"}}', "metadata: Input should be a valid dictionary"),
        (b'{"id": "a", "text": "caf\xe9 ' + SECRET.encode() + b'"}', "not valid JSON (UnicodeDecodeError"),
    ],
)
def test_invalid_lines_name_the_line_and_never_quote_the_text(raw: str | bytes, reason: str) -> None:
    with pytest.raises(InvalidLine) as caught:
        parse_line(raw, 7)
    err = caught.value
    assert isinstance(err, BadInput) and err.status_code == 400
    assert err.line == 7 and str(err).startswith("line 7: ") and reason in err.reason
    for shown in (str(err), err.message, err.reason, json.dumps(err.to_payload())):
        assert SECRET not in shown and "jane.doe" not in shown


def test_valid_lines_parse_from_text_or_bytes_with_defaults() -> None:
    parsed = parse_line(b'{"id": "x-1", "text": "Hello there.", "metadata": {"k": [1, 2]}}\n', 3)
    assert parsed == BatchDocument(id="x-1", text="Hello there.", metadata={"k": [1, 2]})
    assert parsed.style is None and parsed.format == "auto"
    styled = parse_line('{"id": "y", "text": "<p>Hi</p>", "style": "legal", "format": "html", "extra": 1}', 4)
    assert (styled.style, styled.format) == ("legal", "html")


# -- check_batch / unavailable -----------------------------------------------------------------


def test_check_batch_limits_the_count_and_wants_unique_ids() -> None:
    docs = [doc(i) for i in range(5)]
    check_batch(docs, max_documents=5)  # at the limit is fine
    with pytest.raises(InputTooLarge, match=r"5 documents in one request; the limit is 4"):
        check_batch(docs, max_documents=4)
    repeated = docs + [doc(3), doc(1), doc(3)]
    with pytest.raises(BadInput, match="repeated") as caught:
        check_batch(repeated, max_documents=100)
    assert "'doc-1', 'doc-3'" in caught.value.message and "doc-0" not in caught.value.message


def _failed(err: SummarizerError) -> BatchResult:
    return BatchResult.failed("d", err)


def test_unavailable_only_when_every_result_is_transient() -> None:
    ok = BatchResult(id="ok", summary="fine.")
    transient = [_failed(Overloaded("busy")), _failed(NotReady()), _failed(UpstreamTimeout("slow"))]
    assert all(r.transient for r in transient)
    assert not ok.transient and not _failed(BadInput("empty")).transient and not _failed(ModelError()).transient

    err = unavailable(transient)
    assert isinstance(err, Overloaded) and err.message == "busy"
    assert isinstance(unavailable(transient[1:]), NotReady)
    assert unavailable([]) is None
    assert unavailable(transient + [ok]) is None
    assert unavailable([_failed(BadInput("empty"))] + transient) is None
    assert unavailable(transient + [_failed(ModelError())]) is None


# -- summarize_documents -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_results_keep_input_order_across_chunks_that_finish_out_of_order(preparer: DocumentPreparer) -> None:
    docs = [doc(i) for i in range(20)]
    # The first chunk answers last, the last chunk first.
    model = FakeModel(delays=[0.05, 0.04, 0.03, 0.02, 0.01, 0.0, 0.0])
    results = await asyncio.wait_for(summarize_documents(preparer, docs, model, chunk_documents=3), TIMEOUT_S)
    assert [len(call) for call in model.calls] == [3, 3, 3, 3, 3, 3, 2]
    assert [r.id for r in results] == [d.id for d in docs]
    for d, r in zip(docs, results):
        assert r.error is None and r.summary == first_sentence(d.text)
        assert (r.engine, r.model, r.style) == ("fake", "fake:1", "news")
        assert r.input_words == len(d.text.split())


@pytest.mark.anyio
async def test_each_documents_error_lands_at_its_own_position(preparer: DocumentPreparer) -> None:
    docs = [doc(i, metadata={"n": i}) for i in range(10)]
    docs[1] = doc(1, style="poetry", metadata={"n": 1})
    docs[4] = doc(4, text="   \n  ", metadata={"n": 4})
    docs[6] = doc(6, text="This one is BROKEN for the model. Really.", metadata={"n": 6})
    docs[8] = doc(8, text="x" * 2001)
    model = FakeModel()
    results = await asyncio.wait_for(summarize_documents(preparer, docs, model, chunk_documents=3), TIMEOUT_S)

    kinds = [r.error.type if r.error else "ok" for r in results]
    assert kinds == ["ok", "UnknownStyle", "ok", "ok", "BadInput", "ok", "ModelError", "ok", "InputTooLarge", "ok"]
    assert [r.id for r in results] == [d.id for d in docs]
    # Errors echo the metadata too, and a 5xx shows its fixed public message only.
    assert [r.metadata for r in results[:8]] == [{"n": i} for i in range(8)]
    assert results[1].error is not None and "valid styles" in results[1].error.message
    assert results[6].error is not None and results[6].error.message == ModelError.public_message
    assert results[6].error.status == 500 and "cuda" not in results[6].to_line()
    for i in (0, 2, 3, 5, 7, 9):
        assert results[i].summary == first_sentence(docs[i].text)
    # Documents that failed preparation never reach the model.
    sent = [item.text for call in model.calls for item in call]
    assert len(sent) == 7 and not any(t.startswith("x" * 100) for t in sent)


@pytest.mark.anyio
async def test_an_overloaded_chunk_fails_only_its_own_documents_as_transient(preparer: DocumentPreparer) -> None:
    docs = [doc(i) for i in range(12)]
    docs[5] = doc(5, text="Please OVERLOAD the model. Then stop.")
    docs[6] = doc(6, text="")  # in the overloaded chunk, but its own error comes first
    results = await asyncio.wait_for(summarize_documents(preparer, docs, FakeModel(), chunk_documents=4), TIMEOUT_S)

    kinds = [r.error.type if r.error else "ok" for r in results]
    assert kinds == ["ok"] * 4 + ["Overloaded", "Overloaded", "BadInput", "Overloaded"] + ["ok"] * 4
    assert [r.transient for r in results] == [False] * 4 + [True, True, False, True] + [False] * 4
    assert results[4].error is not None and results[4].error.message == "the model queue is full"
    assert unavailable(results) is None  # others got through: answer per document

    everything_busy = await summarize_documents(preparer, [docs[5], doc(20, text="OVERLOAD again. Yes.")], FakeModel())
    assert isinstance(unavailable(everything_busy), Overloaded)


@pytest.mark.anyio
async def test_styles_resolve_per_document_then_default_and_the_model_sees_redacted_text(preparer: DocumentPreparer) -> None:
    docs = [doc(0), doc(1, style="LEGAL"), doc(2, text=f"Mail {SECRET} today. Or call later.")]
    model = FakeModel()
    results = await summarize_documents(preparer, docs, model, default_style="casual")
    assert [r.style for r in results] == ["casual", "legal", "casual"]
    assert [item.style.name for item in model.calls[0]] == ["casual", "legal", "casual"]
    assert SECRET not in json.dumps([item.text for item in model.calls[0]])
    assert results[2].redactions == {"EMAIL_ADDRESS": 1} and results[0].redactions == {}
    with pytest.raises(UnknownStyle):
        preparer.styles.resolve("poetry")


@pytest.mark.anyio
async def test_no_model_call_when_no_document_survives_preparation(preparer: DocumentPreparer) -> None:
    model = FakeModel()
    results = await summarize_documents(preparer, [doc(0, text=""), doc(1, style="nope")], model)
    assert model.calls == [] and [r.error.type for r in results if r.error] == ["BadInput", "UnknownStyle"]
    assert await summarize_documents(preparer, [], model) == []


@pytest.mark.anyio
async def test_a_chunk_with_a_wrong_outcome_count_never_shifts_summaries(preparer: DocumentPreparer) -> None:
    model = FakeModel()

    async def one_extra_from_the_first_call(items: list[SummaryItem]) -> list[ItemOutcome]:
        outcomes = await model(items)
        return outcomes + outcomes[-1:] if len(model.calls) == 1 else outcomes

    docs = [doc(i) for i in range(6)]
    results = await summarize_documents(preparer, docs, one_extra_from_the_first_call, chunk_documents=3)
    for d, r in zip(docs, results):
        assert r.summary is None or r.summary == first_sentence(d.text), f"{d.id} got another document's summary"
