"""The checked-in Grafana dashboard queries only metrics the service really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import pipelines.observe.metrics  # noqa: F401  (registers our metrics)

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "summarizer.json"
# BentoML's own, as its /metrics names them (bentoml/_internal/server/http/instruments.py).
BENTOML = {"bentoml_service_request_total", "bentoml_service_request_duration_seconds",
           "bentoml_service_request_in_progress", "bentoml_service_adaptive_batch_size"}  # fmt: skip


def test_every_query_names_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = {name for metric in REGISTRY.collect() for name in (metric.name, f"{metric.name}_total")}
    queried = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(?:summarizer|bentoml)_\w+", target["expr"])
    }
    assert queried, "the dashboard queries nothing"
    ours = {name for name in queried if name.startswith("summarizer_")}
    assert ours <= exported, ours - exported
    assert queried - ours <= BENTOML, (queried - ours) - BENTOML
    assert {"summarizer_documents_total", "summarizer_stage_seconds", "summarizer_auth_failures_total"} <= ours


def test_services_are_told_apart_by_runner_name() -> None:
    """In a built Bento BentoML labels both services' metrics with the Bento's name as
    `service_name`; only `runner_name` says which service it is (from source both agree)."""
    text = DASHBOARD.read_text()
    assert "service_name" not in text
    assert 'runner_name=\\"summarizer\\"' in text
