"""AbstractiveEngine against tiny random BART, T5 and GPT-2 checkpoints built offline.

Random weights write gibberish, so these tests check plumbing (prompts, chunking, map-reduce,
batching, error isolation, loading), never summary quality.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from pipelines.engines import abstractive
from pipelines.engines.abstractive import AbstractiveEngine
from pipelines.engines.contract import Outcome, SummaryItem, SummaryResult
from pipelines.errors import BadInput, ConfigError, ModelError
from pipelines.styles import GenerationParams, Style, StyleRegistry
from pipelines.text.sentences import clean
from tests.fixtures.tiny_models import build_tiny_bart, build_tiny_causal, build_tiny_t5, sample_text

BUILDERS: dict[str, Callable[[Path], Path]] = {
    "bart": build_tiny_bart,
    "t5": build_tiny_t5,
    "causal": build_tiny_causal,
}
SHORT = "The city council met on Monday to discuss the budget. The mayor said the plan would be ready by March."
MARKER = "xyzzy"


def fast(style: Style, **generation: Any) -> Style:
    """The style with short generations, so every test stays well under a second per call."""
    params = {"max_new_tokens": 8, "min_new_tokens": 2, "num_beams": 1, **generation}
    return style.model_copy(update={"generation": GenerationParams(**{**style.generation.model_dump(), **params})})


def result(outcome: Outcome) -> SummaryResult:
    assert isinstance(outcome, SummaryResult), outcome
    return outcome


@pytest.fixture(scope="module")
def registry() -> StyleRegistry:
    return StyleRegistry.load()


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {kind: build(root / kind) for kind, build in BUILDERS.items()}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def engine(request: pytest.FixtureRequest, model_dirs: dict[str, Path]) -> AbstractiveEngine:
    return AbstractiveEngine(model_dirs[request.param], f"tiny-{request.param}:test", device="cpu")


@pytest.fixture
def forward_calls(engine: AbstractiveEngine, monkeypatch: pytest.MonkeyPatch) -> list[list[list[int]]]:
    """Records the token ids of every forward pass; raises on any batch holding MARKER."""
    calls: list[list[list[int]]] = []
    original = engine._forward

    def spy(batch: list[list[int]], generation: GenerationParams) -> list[list[int]]:
        calls.append(batch)
        if any(MARKER in text for text in engine.tokenizer.batch_decode(batch)):
            raise RuntimeError("poisoned input")
        return original(batch, generation)

    monkeypatch.setattr(engine, "_forward", spy)
    return calls


@pytest.fixture
def generate_calls(engine: AbstractiveEngine, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Records the texts (before prompting) of every generation round."""
    calls: list[list[str]] = []
    original = engine._generate

    def spy(texts: list[str], style: Style) -> list[str | ModelError]:
        calls.append(list(texts))
        return original(texts, style)

    monkeypatch.setattr(engine, "_generate", spy)
    return calls


def test_short_text_gives_one_chunk_summary(engine: AbstractiveEngine, registry: StyleRegistry) -> None:
    style = fast(registry.get("news"), num_beams=2, length_penalty=1.5, no_repeat_ngram_size=2)
    [outcome] = engine.summarize([SummaryItem(text=SHORT, style=style)])
    summary = result(outcome)
    assert summary.summary.strip() and summary.summary == summary.summary.strip()
    assert summary.chunks == 1
    assert summary.input_words == len(SHORT.split())
    assert summary.summary_words == len(summary.summary.split())


def test_long_text_is_chunked_and_reduced_without_truncation(
    engine: AbstractiveEngine,
    registry: StyleRegistry,
    forward_calls: list[list[list[int]]],
    generate_calls: list[list[str]],
) -> None:
    document = sample_text(3000, seed=7)
    style = fast(registry.get("news"))
    budget = engine._chunk_budget(style)
    doc_tokens = len(engine.tokenizer(clean(document), add_special_tokens=False, verbose=False)["input_ids"])

    [outcome] = engine.summarize([SummaryItem(text=document, style=style)])

    summary = result(outcome)
    assert summary.summary
    assert summary.chunks == len(generate_calls[0])
    assert math.ceil(doc_tokens / budget) <= summary.chunks <= 2 * math.ceil(doc_tokens / budget)
    # Every word of the document reached the map round, in order: nothing was cut off.
    assert " ".join(generate_calls[0]).split() == clean(document).split()
    assert len(generate_calls) >= 2 and len(generate_calls[-1]) == 1  # reduce ran, down to one input
    window = engine.window_tokens - (style.generation.max_new_tokens if engine.kind == "causal" else 0)
    assert max(len(ids) for batch in forward_calls for ids in batch) <= window


def test_sentence_longer_than_window_is_split_not_dropped(
    engine: AbstractiveEngine,
    registry: StyleRegistry,
    forward_calls: list[list[list[int]]],
    generate_calls: list[list[str]],
) -> None:
    run_on = " ".join(["the buyer shall pay the seller on delivery"] * 60)  # one sentence, 480 words
    style = fast(registry.get("casual"))

    [outcome] = engine.summarize([SummaryItem(text=run_on, style=style)])

    assert result(outcome).chunks > 1
    # Cuts fall on token boundaries, possibly inside a word: compare the characters.
    assert "".join(generate_calls[0]).replace(" ", "") == run_on.replace(" ", "")
    window = engine.window_tokens - (style.generation.max_new_tokens if engine.kind == "causal" else 0)
    assert max(len(ids) for batch in forward_calls for ids in batch) <= window


def test_reduce_rounds_are_bounded(
    model_dirs: dict[str, Path], registry: StyleRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunk summaries that cannot shrink below 40 tokens keep a 3000-word text in many chunks.
    monkeypatch.setattr(abstractive, "_MIN_CHUNK_SUMMARY_TOKENS", 40)
    engine = AbstractiveEngine(model_dirs["bart"], "tiny-bart:test", device="cpu", max_reduce_rounds=1)
    style = fast(registry.get("news"), max_new_tokens=40, min_new_tokens=40)
    [outcome] = engine.summarize([SummaryItem(text=sample_text(3000, seed=3), style=style)])
    assert isinstance(outcome, BadInput)
    assert "too long" in outcome.message


def test_two_styles_in_one_batch_keep_order(
    engine: AbstractiveEngine, registry: StyleRegistry, forward_calls: list[list[list[int]]]
) -> None:
    news, casual = fast(registry.get("news")), fast(registry.get("casual"), max_new_tokens=6)
    texts = [" ".join(SHORT.split()[:n]) for n in (6, 9, 12, 15, 18)]
    items = [SummaryItem(text=text, style=news if i % 2 == 0 else casual) for i, text in enumerate(texts)]

    outcomes = engine.summarize(items)

    assert [result(o).input_words for o in outcomes] == [6, 9, 12, 15, 18]
    # One generate call per style, never a batch mixing them.
    assert sorted(len(batch) for batch in forward_calls) == [2, 3]


def test_poisoned_item_fails_alone(
    engine: AbstractiveEngine, registry: StyleRegistry, forward_calls: list[list[list[int]]]
) -> None:
    style = fast(registry.get("news"))
    texts = [SHORT, f"The {MARKER} report was late. Nobody read it.", "Sam will bring the kids.", "   "]
    outcomes = engine.summarize([SummaryItem(text=text, style=style) for text in texts])

    assert result(outcomes[0]).summary and result(outcomes[2]).summary
    assert isinstance(outcomes[1], ModelError) and MARKER not in outcomes[1].message
    assert isinstance(outcomes[3], BadInput) and outcomes[3].message == "text is empty"
    assert len(forward_calls[0]) == 3  # the shared batch failed, then each input ran alone
    assert sorted(len(batch) for batch in forward_calls[1:]) == [1, 1, 1]


def test_poisoned_chunk_fails_only_its_document(
    engine: AbstractiveEngine, registry: StyleRegistry, forward_calls: list[list[list[int]]]
) -> None:
    style = fast(registry.get("news"))
    long_poisoned = sample_text(250, seed=1) + f"\n\nIn the end the {MARKER} won."
    outcomes = engine.summarize([SummaryItem(text=long_poisoned, style=style), SummaryItem(text=SHORT, style=style)])
    assert isinstance(outcomes[0], ModelError)
    assert result(outcomes[1]).summary


def test_style_longer_than_the_model_can_write_is_capped(engine: AbstractiveEngine, registry: StyleRegistry) -> None:
    greedy = fast(registry.get("news"), max_new_tokens=engine.window_tokens, min_new_tokens=engine.window_tokens)
    fitted = engine._fit_to_model(greedy).generation
    if engine.kind == "seq2seq" and engine._decoder_window is None:
        assert fitted == greedy.generation  # T5's relative positions put no bound on the summary
        return
    limit = engine._decoder_window - 1 if engine._decoder_window else engine.window_tokens // 2
    assert fitted.max_new_tokens == fitted.min_new_tokens == limit
    outcomes = engine.summarize([SummaryItem(text=SHORT, style=greedy), SummaryItem(text=SHORT, style=fast(registry.get("casual")))])
    assert result(outcomes[0]).summary and result(outcomes[1]).summary


def test_attributes_for_info(engine: AbstractiveEngine) -> None:
    expected = {"bart": ("seq2seq", 128), "t5": ("seq2seq", 128), "causal": ("causal", 256)}
    assert (engine.kind, engine.window_tokens) == expected[engine.model_tag.split(":")[0].removeprefix("tiny-")]
    assert engine.name == "abstractive"


def test_prompts_follow_the_model_kind(engine: AbstractiveEngine, registry: StyleRegistry) -> None:
    style = registry.get("legal")
    prompt = engine._prompt("Some text.", style)
    if engine.kind == "causal":
        assert style.instruction in prompt and prompt.index(style.instruction) < prompt.index("Some text.")
    else:  # BART-like models never saw instructions; T5 gets its task prefix from the config
        assert prompt == ("summarize: " if engine.model_tag.startswith("tiny-t5") else "") + "Some text."


def test_cpu_runs_in_float32(model_dirs: dict[str, Path]) -> None:
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("device='auto' picks an accelerator on this machine")
    engine = AbstractiveEngine(model_dirs["t5"], "tiny-t5:test")
    assert (engine.device, engine.dtype) == (torch.device("cpu"), torch.float32)
    assert next(engine.model.parameters()).dtype == torch.float32


def test_causal_model_without_chat_template_fails_at_load(tmp_path: Path) -> None:
    folder = build_tiny_causal(tmp_path / "no-template", chat_template=None)
    with pytest.raises(ConfigError, match="causal LM 'plain-gpt2' needs a chat template"):
        AbstractiveEngine(folder, "plain-gpt2", device="cpu")


def test_bad_settings_fail_at_load(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_batch_tokens must be > 0, got 0"):
        AbstractiveEngine(model_dirs["bart"], "x", max_batch_tokens=0)
    with pytest.raises(ConfigError, match="model_dir must hold a transformers checkpoint"):
        AbstractiveEngine(tmp_path / "missing", "x")


def test_chunk_summaries_are_sized_so_the_reduce_fits_one_window(
    engine: AbstractiveEngine, registry: StyleRegistry
) -> None:
    # A style asking for long summaries must not make map-reduce loop: each of n chunk summaries
    # gets at most budget/(2n) tokens, so one reduce pass is enough.
    style = fast(registry.get("legal"), max_new_tokens=engine.window_tokens // 2, min_new_tokens=engine.window_tokens // 2)
    [outcome] = engine.summarize([SummaryItem(text=sample_text(400, seed=5), style=style)])
    assert result(outcome).chunks > 1 and result(outcome).summary
