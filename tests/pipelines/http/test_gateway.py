from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from pipelines.errors import NotReady, Overloaded, UpstreamTimeout
from pipelines.http.gateway import ModelHealth, call_model


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


def drops_once(calls: list[int]) -> Callable[[], Awaitable[str]]:
    """A model call whose connection drops the first time only; `calls` counts the tries."""

    async def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise Dropped()
        return "done"

    return flaky


def test_retries_a_dropped_connection_once() -> None:
    calls: list[int] = []
    assert run(drops_once(calls)) == "done" and len(calls) == 2


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


class Probe:
    """A readiness probe whose answer the test sets; counts how often it ran."""

    def __init__(self, answer: bool | BaseException = True, delay_s: float = 0.0) -> None:
        self.answer = answer
        self.delay_s = delay_s
        self.runs = 0

    async def __call__(self) -> bool:
        self.runs += 1
        await asyncio.sleep(self.delay_s)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def run_with(call: object, health: ModelHealth, timeout_s: float = 5.0) -> object:
    return asyncio.run(
        call_model(
            call,  # type: ignore[arg-type]
            timeout_s=timeout_s, overload_errors=(Busy,), connection_errors=(Dropped,), retry_after_s=3, health=health,
        )  # fmt: skip
    )


def test_a_dropped_connection_is_retried_when_the_model_still_answers() -> None:
    calls: list[int] = []
    probe = Probe(True)
    health = ModelHealth(probe)
    assert run_with(drops_once(calls), health) == "done" and len(calls) == 2 and probe.runs == 1 and not health.down


@pytest.mark.parametrize("answer", [False, Dropped(), "timeout"], ids=["not-ready", "refused", "no-answer"])
def test_a_dead_model_is_a_fast_503_not_a_wait_for_the_restart(answer: object) -> None:
    calls = []

    async def dropped() -> str:
        calls.append(1)
        raise Dropped()

    probe = Probe(True, delay_s=10) if answer == "timeout" else Probe(answer)  # type: ignore[arg-type]
    health = ModelHealth(probe, probe_timeout_s=0.1)
    started = time.monotonic()
    with pytest.raises(NotReady) as info:
        run_with(dropped, health)
    assert info.value.status_code == 503 and time.monotonic() - started < 1.0
    assert len(calls) == 1 and health.down  # no retry into the void


def test_while_the_model_is_down_calls_fail_fast_until_it_answers_again() -> None:
    calls = []

    async def ok() -> str:
        calls.append(1)
        return "done"

    probe = Probe(False)
    health = ModelHealth(probe, recheck_s=60)
    health.down = True  # an earlier call saw it die

    async def scenario() -> list[str]:
        outcomes = []
        for _ in range(3):
            try:
                result = await call_model(
                    ok, timeout_s=5, overload_errors=(), connection_errors=(Dropped,), retry_after_s=3, health=health
                )
                outcomes.append(result)
            except NotReady:
                outcomes.append("503")
        return outcomes

    assert asyncio.run(scenario()) == ["503", "503", "503"]
    assert calls == [] and probe.runs == 1  # rechecked at most once per recheck_s

    probe.answer = True
    health.recheck_s = 0.0
    assert run_with(ok, health) == "done" and calls == [1] and not health.down


def test_a_healthy_model_is_never_probed() -> None:
    async def ok() -> str:
        return "done"

    probe = Probe(True)
    assert run_with(ok, ModelHealth(probe)) == "done" and probe.runs == 0
