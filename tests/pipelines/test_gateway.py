from __future__ import annotations

import asyncio

import pytest

from pipelines.errors import NotReady, Overloaded, UpstreamTimeout
from pipelines.gateway import call_model


class Busy(Exception):
    pass


class Dropped(ConnectionError):
    pass


def run(call: object, timeout_s: float = 1.0) -> object:
    return asyncio.run(
        call_model(call, timeout_s=timeout_s, overload_errors=(Busy,), connection_errors=(Dropped,), retry_after_s=3)  # type: ignore[arg-type]
    )


def test_passes_results_through() -> None:
    async def ok() -> str:
        return "done"

    assert run(ok) == "done"


def test_retries_a_dropped_connection_once() -> None:
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise Dropped()
        return "done"

    assert run(flaky) == "done" and len(calls) == 2


def test_gives_up_after_the_retry() -> None:
    async def down() -> str:
        raise Dropped()

    with pytest.raises(NotReady):
        run(down)


def test_overload_becomes_429_saying_when_to_retry() -> None:
    async def busy() -> str:
        raise Busy()

    with pytest.raises(Overloaded) as info:
        run(busy)
    assert info.value.status_code == 429 and "retry after 3 s" in info.value.message


def test_deadline_becomes_504() -> None:
    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    with pytest.raises(UpstreamTimeout, match="within 0.05 s"):
        run(slow, timeout_s=0.05)


def test_other_errors_propagate() -> None:
    async def broken() -> str:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run(broken)
