"""Entry side: which model API, and so which lane, a call's documents go to."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pipelines.engines.contract import SummaryItem
from pipelines.engines.grouping import check_outputs

ModelCall = Callable[[list[SummaryItem]], Awaitable[Sequence[Any]]]


async def split_long(items: Sequence[SummaryItem], long_chars: int, short: ModelCall, long: ModelCall) -> list[Any]:
    """Short documents to `short` (the batched live API), long ones to `long` (the long lane), both at
    once; outcomes in input order.

    Long documents must not share the batcher with short ones: it runs one batch at a time, so a
    batch holding a 100k-character document would hold every short request queued behind it.
    """
    is_long = [len(item.text) >= long_chars for item in items]
    if not any(is_long):
        return list(await short(list(items)))
    if all(is_long):
        return list(await long(list(items)))
    shorts = [item for item, flag in zip(items, is_long, strict=True) if not flag]
    longs = [item for item, flag in zip(items, is_long, strict=True) if flag]
    short_out, long_out = await asyncio.gather(short(shorts), long(longs))
    short_iter = iter(check_outputs(shorts, short_out, "live lane"))
    long_iter = iter(check_outputs(longs, long_out, "long lane"))
    return [next(long_iter) if flag else next(short_iter) for flag in is_long]
