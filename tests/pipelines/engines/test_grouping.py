from __future__ import annotations

import pytest

from pipelines.engines.grouping import BatchContractError, check_outputs, dispatcher_tick_s, group_indices, token_capped


def test_group_indices_keeps_first_seen_order() -> None:
    assert group_indices(["b", "a", "b", "c", "a"], key=str) == {"b": [0, 2], "a": [1, 4], "c": [3]}


def test_token_capped_respects_padded_budget_and_item_cap() -> None:
    lengths = [10, 500, 20, 30, 490, 5]
    batches = list(token_capped(lengths, max_tokens=1000, max_items=3))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert max(lengths[i] for i in batch) * len(batch) <= 1000 or len(batch) == 1
    assert batches[0] == [1, 4]  # the two long ones together, padded to 500 each


def test_item_longer_than_budget_runs_alone() -> None:
    assert list(token_capped([5000, 10], max_tokens=100, max_items=8)) == [[0], [1]]


def test_check_outputs() -> None:
    assert check_outputs([1, 2], ["a", "b"], "x") == ["a", "b"]
    with pytest.raises(BatchContractError, match="x returned 1 outputs for 2 inputs"):
        check_outputs([1, 2], ["a"], "x")


def test_dispatcher_tick_is_coarse_on_cpu_and_bentoml_default_on_gpu_unless_set() -> None:
    assert dispatcher_tick_s(None, "cpu") == 0.010
    assert dispatcher_tick_s(None, "cuda") == 0.001
    assert dispatcher_tick_s(2.5, "cuda") == 0.0025
