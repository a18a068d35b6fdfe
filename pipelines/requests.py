"""Checks on what a client sent, before any model work: empty and oversized text."""

from __future__ import annotations

from pipelines.errors import BadInput, InputTooLarge


def check_text(text: str, max_input_chars: int) -> str:
    if len(text) > max_input_chars:
        raise InputTooLarge(
            f"text is {len(text)} characters; the limit is {max_input_chars} "
            "(SUMMARIZER_MAX_INPUT_CHARS); split the document or use the batch job"
        )
    if not text.strip():
        raise BadInput("text is empty; send {\"text\": \"...\"} with the document to summarize")
    return text
