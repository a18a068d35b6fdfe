from __future__ import annotations

from pipelines.errors import (
    BadInput,
    ModelError,
    NotReady,
    Overloaded,
    StorageFull,
    SummarizerError,
    UnknownStyle,
    from_payload,
)
from pipelines.postgres.connection import DatabaseUnavailable


def test_client_errors_show_their_message() -> None:
    assert BadInput("text is empty").to_payload() == {
        "error": {"type": "BadInput", "message": "text is empty", "status": 400}
    }


def test_server_errors_never_echo_internals() -> None:
    payload = ModelError("Traceback ... secret document text").to_payload()
    assert payload["error"] == {"type": "ModelError", "message": "the model failed on this document", "status": 500}
    assert NotReady().to_payload()["error"]["status"] == 503  # type: ignore[index]


def test_errors_round_trip_as_data() -> None:
    err = from_payload("BadInput", "no words")
    assert isinstance(err, BadInput) and err.message == "no words" and err.status_code == 400
    assert type(from_payload("UnknownStyle", "x")) is BadInput
    assert isinstance(from_payload("SomethingElse", "x"), ModelError)
    assert UnknownStyle("x", ["b", "a"]).valid == ["a", "b"]


def test_only_errors_worth_retrying_soon_say_when() -> None:
    for err in (Overloaded("busy"), NotReady(), DatabaseUnavailable("down")):
        assert err.headers(7) == {"Retry-After": "7"}
    for other in (BadInput("x"), ModelError(), StorageFull("full"), SummarizerError()):
        assert other.headers(7) == {}
