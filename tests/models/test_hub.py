"""models/hub.py: every way the Hub can say no becomes one clear ModelImportError.

A throwaway HTTP server on 127.0.0.1 plays the Hub and answers every request with one status and
the `X-Error-Code` header the real Hub sends, so huggingface_hub's own error mapping runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import huggingface_hub
import pytest

from models import ModelImportError
from models.hub import _allow_patterns, download


class FakeHub(ThreadingHTTPServer):
    status = 404
    error_code = ""


class _Handler(BaseHTTPRequestHandler):
    server: FakeHub

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(self.server.status)
        if self.server.error_code:
            self.send_header("X-Error-Code", self.server.error_code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (signature of the base)
        pass


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    server = FakeHub(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("status", "error_code", "message"),
    [
        (404, "RepoNotFound", "no model 'org/model' on the Hugging Face Hub"),
        (401, "RepoNotFound", "no model 'org/model' on the Hugging Face Hub"),
        (404, "RevisionNotFound", "'org/model' has no revision 'v9' on the Hugging Face Hub"),
        (403, "GatedRepo", "'org/model' is gated on the Hugging Face Hub"),
        (403, "", "the Hugging Face Hub refused 'org/model'"),
    ],
)
def test_hub_refusals(fake_hub: FakeHub, tmp_path: Path, status: int, error_code: str, message: str) -> None:
    fake_hub.status, fake_hub.error_code = status, error_code
    with pytest.raises(ModelImportError, match=message):
        download("org/model", tmp_path, revision="v9", name="summarizer-abstractive")


def test_invalid_repo_id(tmp_path: Path) -> None:
    with pytest.raises(ModelImportError, match="neither an existing folder nor a valid Hugging Face Hub id"):
        download("a/b/c", tmp_path, revision=None, name="x")


def test_offline_mode_is_a_network_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelImportError, match=r"no network\?\).*offline mode is enabled"):
        download("org/model", tmp_path, revision="abc123", name="x")


def test_the_hint_pins_the_requested_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelImportError, match="hf download org/model --revision abc123 --local-dir DIR"):
        download("org/model", tmp_path, revision="abc123", name="x")


def test_one_weight_format_is_downloaded() -> None:
    assert "*.safetensors" in _allow_patterns(["model.safetensors", "pytorch_model.bin"])
    assert "pytorch_model*.bin" not in _allow_patterns(["model.safetensors", "pytorch_model.bin"])
    assert "pytorch_model*.bin" in _allow_patterns(["pytorch_model.bin", "tf_model.h5"])
