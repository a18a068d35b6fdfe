"""Abstractive summaries from a local seq2seq (BART, T5) or chat-tuned causal LM checkpoint.

    engine = AbstractiveEngine(Path("models/bart-large-cnn"), "summarizer-abstractive:abc123")
    outcomes = engine.summarize([SummaryItem(text=article, style=registry.get("news"))])

Each call runs preprocess (clean, chunk, build prompts) -> forward (`generate()` on token-capped
micro-batches) -> postprocess (decode, tidy). Documents longer than the model's window are
summarized map-reduce style instead of being truncated: every chunk is summarized, the chunk
summaries are joined and summarized again until the text fits. All pieces of all items of one
style are generated together in each round, which is where batching pays. A failing micro-batch is
retried input by input, so only the items whose own pieces fail get an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from pipelines.engines.contract import Outcome, SummaryItem, SummaryResult
from pipelines.engines.device import select_device, select_dtype
from pipelines.engines.grouping import check_outputs, group_indices, token_capped
from pipelines.errors import BadInput, ConfigError, ModelError, SummarizerError
from pipelines.scheduling.scheduler import preemption_point
from pipelines.styles import GenerationParams, Style
from pipelines.text.sentences import clean, split_sentences, word_count

logger = logging.getLogger(__name__)

# Chunks are sized from per-sentence token counts; joining sentences can shift a token or two at
# each boundary, so keep a little room and verify every chunk afterwards.
_PROMPT_SLACK_TOKENS = 4
# Below this many tokens of text per chunk, map-reduce cannot make progress.
_MIN_CHUNK_TOKENS = 16
# Even a document in many chunks gets a few tokens per chunk summary, or they say nothing.
_MIN_CHUNK_SUMMARY_TOKENS = 8
_SANE_MAX_LENGTH = 1_000_000  # tokenizers without a limit report ~1e30
_WHITESPACE = re.compile(r"\s+")


@dataclass
class _Job:
    """One item's way through map-reduce: the text of the current round and what came of it."""

    index: int
    text: str
    chunks: int = 0
    rounds: int = 0
    summary: str | None = None
    error: SummarizerError | None = None


def _context_window(config: Any, tokenizer: Any, model_tag: str) -> int:
    limits = [
        value
        for value in (getattr(config, "max_position_embeddings", None), getattr(config, "n_positions", None))
        if isinstance(value, int) and value > 0
    ]
    if isinstance(tokenizer.model_max_length, int) and 0 < tokenizer.model_max_length < _SANE_MAX_LENGTH:
        limits.append(tokenizer.model_max_length)
    if not limits:
        raise ConfigError(f"model {model_tag!r} must declare its window (max_position_embeddings or model_max_length)")
    return min(limits)


class AbstractiveEngine:
    """The `Engine` for generated summaries. Load once per worker; `summarize` is batch in, batch out.

    For /info: `kind` is "seq2seq" or "causal"; `window_tokens` is the model's context in tokens
    (a causal LM's prompt gets that less the style's max_new_tokens). Bad settings or a checkpoint
    that cannot work (a causal LM without a chat template) raise ConfigError here, at start-up.
    """

    name = "abstractive"

    def __init__(
        self,
        model_dir: Path,
        model_tag: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_batch_tokens: int = 16384,
        max_batch_items: int = 32,
        max_reduce_rounds: int = 4,
    ) -> None:
        limits = {"max_batch_tokens": max_batch_tokens, "max_batch_items": max_batch_items,
                  "max_reduce_rounds": max_reduce_rounds}
        for label, value in limits.items():
            if value <= 0:
                raise ConfigError(f"{label} must be > 0, got {value}")
        self.model_tag = model_tag
        self.max_batch_tokens, self.max_batch_items = max_batch_tokens, max_batch_items
        self.max_reduce_rounds = max_reduce_rounds
        self.device = select_device(device)
        self.dtype = select_dtype(dtype, self.device)
        try:
            config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"model_dir must hold a transformers checkpoint, got {str(model_dir)!r}: {exc}") from exc
        self.kind: Literal["seq2seq", "causal"] = "seq2seq" if config.is_encoder_decoder else "causal"
        # Causal LMs continue the prompt on the right, so a batch must be padded on the left.
        padding = {"padding_side": "left"} if self.kind == "causal" else {}
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, **padding)
        if self.kind == "causal" and not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"causal LM {model_tag!r} needs a chat template")
        if not self.tokenizer.is_fast:
            raise ConfigError(f"model {model_tag!r} must ship a fast tokenizer (tokenizer.json); chunking needs offsets")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        auto_class = AutoModelForSeq2SeqLM if self.kind == "seq2seq" else AutoModelForCausalLM
        # transformers 5 defaults to dtype="auto" (the checkpoint's own), so always say what we want.
        # device_map puts the weights straight onto the device, without a staging copy in host memory.
        self.model = auto_class.from_pretrained(model_dir, local_files_only=True, dtype=self.dtype,
                                                device_map=self.device).eval()
        generation_config = self.model.generation_config
        # Styles own the length: checkpoint lengths (BART-CNN min_length=56) would override them.
        generation_config.min_length = None
        generation_config.max_length = None
        if generation_config.pad_token_id is None:
            generation_config.pad_token_id = self.tokenizer.pad_token_id
        self.window_tokens = _context_window(config, self.tokenizer, model_tag)
        # Learned decoder positions (BART) also bound the summary length; relative ones (T5) do not.
        self._decoder_window = getattr(config, "max_position_embeddings", None) if self.kind == "seq2seq" else None
        summarization = (getattr(config, "task_specific_params", None) or {}).get("summarization", {})
        self._prefix: str = summarization.get("prefix", "") or ""

    # -- public --------------------------------------------------------------------------------

    def summarize(self, items: Sequence[SummaryItem]) -> list[Outcome]:
        """One outcome per item, in order. Errors belong to their item; neighbours still succeed."""
        jobs = [_Job(index=i, text=clean(item.text)) for i, item in enumerate(items)]
        for job in jobs:
            if not job.text:
                job.error = BadInput("text is empty")
        pending = [job for job in jobs if job.error is None]
        groups = group_indices(pending, lambda job: items[job.index].style.batch_key())
        for positions in groups.values():
            group = [pending[p] for p in positions]
            self._run_group(items[group[0].index].style, group)
        outcomes: list[Outcome] = []
        for job, item in zip(jobs, items):
            if job.error is not None or job.summary is None:
                outcomes.append(job.error or ModelError("the model produced no summary"))
            else:
                outcomes.append(SummaryResult(summary=job.summary, input_words=word_count(clean(item.text)),
                                              summary_words=word_count(job.summary), chunks=job.chunks))
        return check_outputs(items, outcomes, "AbstractiveEngine.summarize")

    # -- map-reduce over one style ------------------------------------------------------------

    def _run_group(self, style: Style, jobs: list[_Job]) -> None:
        """Rounds of chunk -> generate -> join until every job has one summary or an error."""
        style = self._fit_to_model(style)
        try:
            budget = self._chunk_budget(style)
        except BadInput as exc:
            for job in jobs:
                job.error = exc
            return
        active = jobs
        while active:
            plan: list[tuple[_Job, list[str]]] = []
            for job in active:
                chunks = self._chunk(job.text, budget)
                if job.rounds == 0:
                    job.chunks = len(chunks)
                elif len(chunks) > 1 and job.rounds > self.max_reduce_rounds:
                    job.error = BadInput(f"document too long for this model: still {len(chunks)} chunks "
                                         f"after {self.max_reduce_rounds} reduce rounds")
                    continue
                plan.append((job, chunks))
            active = []
            for chunk_style, members in self._by_summary_length(style, plan, budget).items():
                outputs = self._generate([chunk for _, chunks in members for chunk in chunks], chunk_style)
                start = 0
                for job, chunks in members:
                    if self._absorb(job, outputs[start:start + len(chunks)]):
                        active.append(job)
                    start += len(chunks)

    def _by_summary_length(
        self, style: Style, plan: list[tuple[_Job, list[str]]], budget: int
    ) -> dict[Style, list[tuple[_Job, list[str]]]]:
        """Group a round's jobs by how long each chunk summary may be.

        A document cut into n chunks gets at most budget/(2n) new tokens per chunk, so the
        joined chunk summaries fit one window (with room for re-tokenization drift) and the next
        round is the last: map-reduce converges instead of looping on long chunk summaries.
        """
        groups: dict[Style, list[tuple[_Job, list[str]]]] = {}
        for job, chunks in plan:
            chunk_style = style
            if len(chunks) > 1:
                cap = max(_MIN_CHUNK_SUMMARY_TOKENS, budget // (2 * len(chunks)))
                if cap < style.generation.max_new_tokens:
                    generation = style.generation.model_copy(
                        update={"max_new_tokens": cap, "min_new_tokens": min(style.generation.min_new_tokens, cap)}
                    )
                    chunk_style = style.model_copy(update={"generation": generation})
            groups.setdefault(chunk_style, []).append((job, chunks))
        return groups

    def _absorb(self, job: _Job, results: list[str | ModelError]) -> bool:
        """Record one round's outputs for a job; True when it needs another (reduce) round."""
        failed = next((r for r in results if isinstance(r, ModelError)), None)
        texts = [r for r in results if isinstance(r, str) and r]
        if failed is not None:
            job.error = failed
        elif not texts:
            job.error = ModelError("the model produced an empty summary")
        elif len(results) == 1:
            job.summary = texts[0]
        else:
            joined = " ".join(texts)
            # Summaries as long as their chunks would loop forever; say so instead.
            if len(self._encode([joined])[0]) >= len(self._encode([job.text])[0]):
                job.error = ModelError("chunk summaries are not shorter than the document; lower max_new_tokens")
                return False
            job.text, job.rounds = joined, job.rounds + 1
            return True
        return False

    # -- preprocess ------------------------------------------------------------------------------

    def _prompt(self, text: str, style: Style) -> str:
        # Seq2seq summarizers (BART-CNN) were never trained on instructions: only the task prefix.
        if self.kind == "seq2seq":
            return self._prefix + text
        messages = [{"role": "system", "content": style.instruction}, {"role": "user", "content": text}]
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return str(prompt)

    def _encode(self, texts: list[str], *, special: bool = False) -> list[list[int]]:
        if not texts:  # transformers 5 raises IndexError on an empty batch
            return []
        # verbose=False: counting a long document's tokens is on purpose, not a mistake to log.
        encoded = self.tokenizer(texts, add_special_tokens=special, verbose=False)
        return [list(ids) for ids in encoded["input_ids"]]

    def _input_window(self, generation: GenerationParams) -> int:
        return self.window_tokens - (generation.max_new_tokens if self.kind == "causal" else 0)

    def _fit_to_model(self, style: Style) -> Style:
        """Cap the style's summary length at what this model can write.

        A style is written for many models: `legal` asks for 256 new tokens, which BART's 1024
        decoder positions allow but a small model's do not. The summary gets shorter; the input
        is never cut. A causal LM keeps at least half its window for the prompt.
        """
        generation = style.generation
        if self._decoder_window is not None:
            limit = self._decoder_window - 1
        elif self.kind == "causal":
            limit = self.window_tokens // 2
        else:
            return style
        if generation.max_new_tokens <= limit:
            return style
        fitted = generation.model_copy(
            update={"max_new_tokens": limit, "min_new_tokens": min(generation.min_new_tokens, limit)}
        )
        return style.model_copy(update={"generation": fitted})

    def _chunk_budget(self, style: Style) -> int:
        """Text tokens one chunk may hold: the input window less the prompt around the text."""
        generation = style.generation
        overhead = len(self._encode([self._prompt("", style)], special=self.kind == "seq2seq")[0])
        budget = self._input_window(generation) - overhead - _PROMPT_SLACK_TOKENS
        if budget < _MIN_CHUNK_TOKENS:
            raise BadInput(f"style {style.name!r} leaves no room for text in this model's {self.window_tokens}-token "
                           f"window (max_new_tokens={generation.max_new_tokens})")
        return budget

    def _chunk(self, text: str, budget: int) -> list[str]:
        """Sentence-aligned chunks of at most `budget` tokens. Nothing is dropped."""
        if len(self._encode([text])[0]) <= budget:
            return [text]
        parts: list[str] = []
        sentences = split_sentences(text)
        for sentence, ids in zip(sentences, self._encode(sentences)):
            parts.extend(self._split_by_tokens(sentence, budget) if len(ids) > budget else [sentence])
        counts = [len(ids) for ids in self._encode(parts)]
        chunks: list[list[str]] = [[]]
        used = 0
        for part, count in zip(parts, counts):
            if chunks[-1] and used + count + 1 > budget:
                chunks.append([])
                used = 0
            chunks[-1].append(part)
            used += count + 1
        return [fitted for group in chunks for fitted in self._fit(group, budget)]

    def _fit(self, parts: list[str], budget: int) -> list[str]:
        # Estimates were per sentence; halve any chunk whose joined text tokenizes over budget.
        joined = " ".join(parts)
        if len(parts) == 1 or len(self._encode([joined])[0]) <= budget:
            return [joined]
        middle = len(parts) // 2
        return self._fit(parts[:middle], budget) + self._fit(parts[middle:], budget)

    def _split_by_tokens(self, sentence: str, budget: int) -> list[str]:
        """Cut a sentence longer than a chunk every `budget` tokens; offsets keep the text exact."""
        offsets = self.tokenizer(sentence, add_special_tokens=False, return_offsets_mapping=True,
                                 verbose=False)["offset_mapping"]
        # A cut piece may re-tokenize a token or two longer; the prompt slack absorbs that.
        cuts = [0] + [offsets[i][0] for i in range(budget, len(offsets), budget)] + [len(sentence)]
        return [piece for start, end in zip(cuts, cuts[1:]) if (piece := sentence[start:end].strip())]

    # -- forward and postprocess ---------------------------------------------------------------

    def _generate(self, texts: list[str], style: Style) -> list[str | ModelError]:
        """A summary or a ModelError per text, same order; micro-batched, failures isolated."""
        encoded = self._encode([self._prompt(text, style) for text in texts], special=self.kind == "seq2seq")
        window = self._input_window(style.generation)
        results: list[str | ModelError] = [ModelError("a chunk does not fit the model window") for _ in texts]
        fitting = [i for i, ids in enumerate(encoded) if len(ids) <= window]
        lengths = [len(encoded[i]) for i in fitting]
        for batch in token_capped(lengths, self.max_batch_tokens, self.max_batch_items):
            self._run_isolated([fitting[j] for j in batch], encoded, style.generation, results)
        return check_outputs(texts, results, "AbstractiveEngine._generate")

    def _run_isolated(self, members: list[int], encoded: list[list[int]], generation: GenerationParams,
                      results: list[str | ModelError]) -> None:
        # The one place foreign exceptions become ModelError; the message never holds document text.
        try:
            outputs = self._postprocess(self._forward([encoded[i] for i in members], generation))
        except Exception as exc:
            if len(members) > 1:
                for member in members:
                    self._run_isolated([member], encoded, generation, results)
                return
            logger.exception("generation failed for one input of %d tokens", len(encoded[members[0]]))
            results[members[0]] = ModelError(f"generation failed ({type(exc).__name__})")
            return
        for member, output in zip(members, check_outputs(members, outputs, "AbstractiveEngine._forward")):
            results[member] = output

    def _generation_kwargs(self, generation: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": generation.max_new_tokens,
            # min above max only makes transformers warn; the max wins either way.
            "min_new_tokens": min(generation.min_new_tokens, generation.max_new_tokens),
            "num_beams": generation.num_beams,
            "no_repeat_ngram_size": generation.no_repeat_ngram_size,
            "do_sample": generation.do_sample,
        }
        if generation.num_beams > 1:
            kwargs.update(length_penalty=generation.length_penalty, early_stopping=True)
        if generation.do_sample:
            kwargs.update(temperature=generation.temperature, top_p=generation.top_p)
        return kwargs

    def _forward(self, batch: list[list[int]], generation: GenerationParams) -> list[list[int]]:
        """The only step that touches the model: pad, generate, return each input's new tokens."""
        preemption_point()  # between micro-batches, live work cuts in ahead of jobs and long documents
        inputs = self.tokenizer.pad({"input_ids": batch}, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            output = self.model.generate(**inputs, **self._generation_kwargs(generation))
        if self.kind == "causal":
            output = output[:, inputs["input_ids"].shape[1]:]  # a causal LM echoes its prompt
        return [row.tolist() for row in output.cpu()]

    def _postprocess(self, sequences: list[list[int]]) -> list[str]:
        texts = self.tokenizer.batch_decode(sequences, skip_special_tokens=True)
        return [_WHITESPACE.sub(" ", clean(text)) for text in texts]
