"""The abstractive engine end to end: a tiny random BART, imported with the CLI, served for real.

Random weights give gibberish, so these tests check plumbing (styles, chunking, batching,
errors), never quality.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.fixtures.tiny_models import build_tiny_bart, sample_text
from tests.server.conftest import Server, StartServer, base_env, run_models_cli

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(start_server: StartServer, bentoml_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Server:
    folder = build_tiny_bart(tmp_path_factory.mktemp("tiny-bart"), max_positions=128)
    out = run_models_cli(base_env(bentoml_home), "import", str(folder), "--name", "tiny-bart")
    assert out.startswith("imported tiny-bart:")
    return start_server(bentoml_home, engine="abstractive", abstractive_model="tiny-bart:latest", max_latency_ms="30000")


def post(server: Server, text: str, style: str = "news") -> httpx.Response:
    return httpx.post(
        f"{server.url}/summarize", json={"text": text}, headers={"X-Summary-Style": style}, timeout=180
    )


def test_short_text_is_summarized_by_the_imported_model(server: Server) -> None:
    response = post(server, sample_text(40))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["engine"] == "abstractive"
    assert body["model"].startswith("tiny-bart:")
    assert body["chunks"] == 1
    assert body["summary"].strip()


def test_long_text_is_chunked_map_reduce_not_truncated(server: Server) -> None:
    body = post(server, sample_text(1500), "casual").json()
    assert body["chunks"] > 1, body  # window is 128 tokens: many chunks
    assert body["summary"].strip() and body["style"] == "casual"


def test_styles_change_generation(server: Server) -> None:
    text = sample_text(60, seed=3)
    legal, casual = post(server, text, "legal").json(), post(server, text, "casual").json()
    # legal asks for at least 60 new tokens, casual for at most 48: lengths must differ.
    assert legal["summary_words"] != casual["summary_words"] or legal["summary"] != casual["summary"]


def test_unknown_style_and_empty_text(server: Server) -> None:
    assert post(server, "some text", "pirate").status_code == 400
    assert post(server, " ").status_code == 400


def test_concurrent_requests_of_mixed_styles(server: Server) -> None:
    styles = ["news", "legal", "casual"]

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=180) as client:
            return await asyncio.gather(
                *(
                    client.post("/summarize", json={"text": sample_text(50, seed=i)}, headers={"X-Summary-Style": styles[i % 3]})
                    for i in range(16)
                )
            )

    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [200] * 16, [r.text for r in responses if r.status_code != 200]
    assert [r.json()["style"] for r in responses] == [styles[i % 3] for i in range(16)]
