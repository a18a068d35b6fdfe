from __future__ import annotations

import pytest

from pipelines.errors import BadInput, InputTooLarge
from pipelines.requests import check_text


def test_accepts_text_at_the_limit() -> None:
    assert check_text("a" * 10, 10) == "a" * 10


def test_rejects_empty_and_oversized() -> None:
    with pytest.raises(BadInput, match="empty"):
        check_text(" \n ", 10)
    with pytest.raises(InputTooLarge, match="11 characters; the limit is 10") as info:
        check_text("a" * 11, 10)
    assert info.value.status_code == 413
