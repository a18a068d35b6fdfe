"""PII never leaves the entry service: not to the model, the responses, the logs or error bodies.

Every document carries PII values unique to this run; after the requests, the server's whole
output (stdout and stderr of both services) and every file under its BENTOML_HOME are searched.
People's names (the default NER model) are followed further: traces, metrics, job results and the
knowledge index's files.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Server, StartServer, wait_for
from tests.server.otlp import Receiver

pytestmark = pytest.mark.server


def _with_check(digits: list[int]) -> str:
    def luhn(ds: list[int]) -> int:
        total = 0
        for i, d in enumerate(reversed(ds)):
            d = d * 2 if i % 2 == 0 else d
            total += d - 9 if d > 9 else d
        return (10 - total % 10) % 10

    return "".join(map(str, digits + [luhn(digits)]))


@pytest.fixture(scope="module")
def secrets() -> dict[str, str]:
    rng = random.Random(uuid.uuid4().int)
    tag = uuid.uuid4().hex[:10]
    return {
        "EMAIL_ADDRESS": f"leak.{tag}@example.com",
        "PHONE_NUMBER": f"+44 20 7946 {rng.randint(1000, 9999)}",
        "CREDIT_CARD": _with_check([4] + [rng.randrange(10) for _ in range(14)]),
        "IP_ADDRESS": f"203.0.{rng.randint(1, 254)}.{rng.randint(1, 254)}",
        "EMPLOYEE_ID": f"EMP-{rng.randint(100000, 999999)}",
    }


# Names from several cultures that appear in no other test text, so finding one anywhere afterwards
# is a leak. Fixed, not drawn: the small NER model misses some names in some places (docs/normalization.md
# has the recall), and a test must not fail on the draw.
PEOPLE = ["Olusegun Adeyemi", "Ingrid Lindqvist", "Tomás Herrera"]


@pytest.fixture(scope="module")
def people() -> list[str]:
    return list(PEOPLE)


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {"jobs_dir": tmp_path_factory.mktemp("jobs"), "rag_dir": tmp_path_factory.mktemp("rag")}


@pytest.fixture(scope="module")
def server(start_server: StartServer, bentoml_home: Path, receiver: Receiver, data_dirs: dict[str, Path]) -> Server:
    return start_server(
        bentoml_home,
        redact_patterns=json.dumps({"EMPLOYEE_ID": r"\bEMP-\d{6}\b"}),
        redact_entities=json.dumps(["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "EMPLOYEE_ID"]),
        max_input_chars="5000",
        trace_otlp_endpoint=receiver.endpoint,
        trace_sample_rate="1.0",
        **{name: str(path) for name, path in data_dirs.items()},
    )


def documents(s: dict[str, str]) -> dict[str, str]:
    body = (
        f"The customer wrote from {s['EMAIL_ADDRESS']} and asked for a call back on {s['PHONE_NUMBER']}. "
        f"She paid with card {s['CREDIT_CARD']} and the request came from {s['IP_ADDRESS']}. "
        f"Her case was handled by {s['EMPLOYEE_ID']}, who promised a refund within five working days. "
        "The refund was approved by the finance team on Monday and the customer was informed."
    )
    html = (
        "<html><head><title>Case</title><script>var x = 1;</script></head><body>"
        "<nav><a href='/'>Home</a> <a href='/cases'>Cases</a></nav>"
        f"<article><h1>Refund case</h1><p>{body}</p><p>The team closed the case after the refund.</p></article>"
        "<footer>Copyright Example Ltd</footer></body></html>"
    )
    email = f"{body}\n\nBest regards,\nSupport\n{s['PHONE_NUMBER']}\n\nOn Mon, 2 Mar 2026, {s['EMAIL_ADDRESS']} wrote:\n> Where is my refund? Card {s['CREDIT_CARD']}"
    return {"text": body, "html": html, "email": email}


def test_pii_reaches_no_response_and_no_log(server: Server, bentoml_home: Path, secrets: dict[str, str]) -> None:
    responses: list[httpx.Response] = []
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for name, doc in documents(secrets).items():
            for style in ("news", "legal", "casual"):
                fmt = "html" if name == "html" else "auto"
                responses.append(client.post("/summarize", json={"text": doc, "format": fmt}, headers={"X-Summary-Style": style}))
        ok = responses[:]
        # Error paths too: unknown style, oversized, and bodies that fail validation with the
        # PII inside them (BentoML logs validation errors with their input unless told not to).
        doc = documents(secrets)["text"]
        responses.append(client.post("/summarize", json={"text": doc}, headers={"X-Summary-Style": "pirate"}))
        responses.append(client.post("/summarize", json={"text": doc * 20}))
        responses.append(client.post("/summarize", json={"text": [doc]}))
        responses.append(client.post("/summarize", json={"text": "ok", "format": secrets["EMAIL_ADDRESS"]}))
        truncated = json.dumps({"text": doc})[:-5].encode()
        responses.append(client.post("/summarize", content=truncated, headers={"content-type": "application/json"}))
    assert [r.status_code for r in ok] == [200] * len(ok), [r.text for r in ok if r.status_code != 200]
    assert [r.status_code for r in responses[len(ok):]] == [400, 413, 400, 400, 400]
    for response in ok:
        body = response.json()
        assert body["redactions"]["EMAIL_ADDRESS"] >= 1 and body["redactions"]["EMPLOYEE_ID"] == 1
    html = ok[3].json()
    assert html["normalization"]["format"] == "html" and html["normalization"]["removed"]["html_chars"] > 0
    found = []
    for value in secrets.values():
        for response in responses:
            if value in response.text:
                found.append((value, "response", response.request.url.path))
        if value in server.log.read_text(errors="replace"):
            found.append((value, "server output", str(server.log)))
        for path in bentoml_home.rglob("*"):
            if path.is_file() and "models" not in path.parts and value.encode() in path.read_bytes():
                found.append((value, "file", str(path)))
    assert found == []
    # The check can fail: the values do travel in the requests (server output was searched for real).
    assert secrets["EMAIL_ADDRESS"] in documents(secrets)["text"]


def test_redaction_can_be_switched_off(start_server: StartServer, bentoml_home: Path, secrets: dict[str, str]) -> None:
    plain = start_server(bentoml_home, redact="false")
    body = httpx.post(f"{plain.url}/summarize", json={"text": documents(secrets)["text"]}, headers={"X-Summary-Style": "legal"}, timeout=60).json()
    assert body["redactions"] == {}
    assert secrets["EMAIL_ADDRESS"] in body["summary"]


def named_documents(people: list[str]) -> dict[str, str]:
    """A court report, a web page and an e-mail thread, each naming the run's people."""
    a, b, c = people
    text = (
        f"The witness, {a}, told the court she saw the car leave the harbour road at night. "
        f"Defence counsel {b} asked whether the street lights were working, and the witness said two were broken. "
        "The judge adjourned the hearing until the council provides the maintenance records for the road."
    )
    html = (
        "<html><body><nav><a href='/'>Home</a></nav><article><h1>Bridge hearing</h1>"
        f"<p>Reporter {c} spoke to residents who say the bridge has been unsafe for years.</p>"
        f"<p>According to {a}, the repairs were promised twice and never started.</p></article></body></html>"
    )
    email = (
        f"From: {b} <counsel@example.org>\nTo: {c}\n\nHi {c.split()[0]},\n\n"
        f"{a} has agreed to give evidence again on Monday. The court wants the maintenance records before then, "
        "and the council has promised to send them by Friday.\n\n"
        f"Thanks,\n{b}"
    )
    return {"text": text, "html": html, "email": email}


def test_names_are_placeholders_and_reach_no_log_trace_metric_job_or_index(
    server: Server, bentoml_home: Path, receiver: Receiver, data_dirs: dict[str, Path], people: list[str]
) -> None:
    docs = named_documents(people)
    with httpx.Client(base_url=server.url, timeout=120) as client:
        summaries = {
            name: client.post("/summarize", json={"text": doc, "format": "html" if name == "html" else "auto", "style": "legal"})
            for name, doc in docs.items()
        }
        indexed = client.post("/rag/index", json={"documents": [{"id": f"case-{n}", "text": d} for n, d in docs.items()]})
        cited = client.post("/rag", json={"text": docs["text"], "style": "legal"})
        lines = "".join(json.dumps({"id": f"doc-{n}", "text": d, "style": "legal"}) + "\n" for n, d in docs.items())
        job = client.post("/jobs", content=lines.encode(), headers={"Content-Type": "application/x-ndjson"}).json()
        wait_for(lambda: client.get(f"/jobs/{job['id']}").json()["status"] == "completed", timeout_s=120)
        results = client.get(f"/jobs/{job['id']}/results")
        metrics = client.get("/metrics")
    for name, response in summaries.items():
        assert response.status_code == 200, response.text
        body = response.json()
        named = sum(body["redactions"].get(entity, 0) for entity in ("PERSON", "LOCATION", "ORGANIZATION"))
        assert named >= 2 and "<PERSON>" in body["summary"], (name, body)
    assert indexed.status_code == 200 and indexed.json()["redactions"].get("PERSON", 0) >= 6
    assert cited.status_code == 200 and cited.json()["citations"]
    assert results.status_code == 200
    assert sum(json.loads(line)["redactions"].get("PERSON", 0) for line in results.text.splitlines()) >= 6
    wait_for(lambda: len(receiver.spans) > 0)
    surnames = [person.split()[1] for person in people]
    places = {
        "responses": "".join(r.text for r in [*summaries.values(), indexed, cited, results]),
        "server output (request log included)": server.log.read_text(errors="replace"),
        "traces": bytes(receiver.raw).decode("utf-8", "replace"),
        "metrics": metrics.text,
    }
    found = [(surname, where) for surname in surnames for where, text in places.items() if surname in text]
    for root in (bentoml_home, *data_dirs.values()):
        for path in root.rglob("*"):
            # The job's own upload is kept as sent until the job is deleted (DELETE /jobs/{id}).
            if path.is_file() and path.relative_to(root).parts[0] not in ("models", "inputs"):
                data = path.read_bytes()
                found += [(surname, str(path)) for surname in surnames if surname.encode() in data]
    assert found == []
    # The search can fail: the job's uploaded lines and the requests did carry the names.
    assert all(surname in lines for surname in surnames)
