"""Batch plumbing shared by engines: group by what must match, cap by tokens, check the contract."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class BatchContractError(RuntimeError):
    """A batch function returned the wrong number of outputs: a bug, never a client error."""


def group_indices(items: Sequence[T], key: Callable[[T], K]) -> dict[K, list[int]]:
    """Positions of items per key, keys in first-seen order (so output order is stable)."""
    groups: dict[K, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(key(item), []).append(index)
    return groups


def token_capped(lengths: Sequence[int], max_tokens: int, max_items: int) -> Iterator[list[int]]:
    """Split positions into micro-batches, longest first, each under a padded-token budget.

    Sorting by length keeps padding small; the budget counts padded tokens (items x longest),
    which is what a forward pass actually costs. An item longer than the budget runs alone.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batch: list[int] = []
    longest = 0
    for index in order:
        candidate_longest = max(longest, lengths[index])
        if batch and (candidate_longest * (len(batch) + 1) > max_tokens or len(batch) >= max_items):
            yield batch
            batch, candidate_longest = [], lengths[index]
        batch.append(index)
        longest = candidate_longest
    if batch:
        yield batch


def check_outputs(inputs: Sequence[object], outputs: Sequence[T], where: str) -> list[T]:
    """As many outputs as inputs, or a named error (never a silent misalignment)."""
    if len(outputs) != len(inputs):
        raise BatchContractError(f"{where} returned {len(outputs)} outputs for {len(inputs)} inputs")
    return list(outputs)


def dispatcher_tick_s(tick_ms: float | None, device_type: str) -> float:
    """The batcher's poll interval: the setting, else 1 ms on accelerators and 10 ms on CPU.

    A CPU batch runs for seconds, so a coarser poll delays dispatch by a negligible share while
    the event loop stops waking (and taking the GIL) a thousand times a second mid-batch.
    """
    if tick_ms is not None:
        return tick_ms / 1000
    return 0.010 if device_type == "cpu" else 0.001
