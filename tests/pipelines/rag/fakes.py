"""What the knowledge index tests share: three small documents and an embedding without a model."""

from __future__ import annotations

import zlib

import numpy as np

from pipelines.rag.index import Document

DIM = 32
TAG = "summarizer-encoder:aaa"
DOCS = [
    Document("cats.md", "# Cats\n\nCats purr when they are content. Cats hunt mice at night.", {"team": "pets"}),
    Document("dogs.md", "# Dogs\n\nDogs bark at strangers. Dogs fetch sticks in the park."),
    Document("tax.txt", "Invoices are due within thirty days. Late invoices incur a fee."),
]


class FakeEmbed:
    """Bag of words hashed into 32 dims (crc32: stable across processes), unit length; counts calls."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return vectors(texts)


def vectors(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().replace(".", " ").replace(":", " ").split():
            out[row, zlib.crc32(word.encode()) % DIM] += 1.0
    unit: np.ndarray = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    return unit


def query(text: str) -> np.ndarray:
    row: np.ndarray = vectors([text])[0]
    return row
