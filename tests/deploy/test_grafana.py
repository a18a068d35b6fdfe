"""The checked-in Grafana dashboard queries only metrics the service really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

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
        for target in panel.get("targets", [])  # a row has none
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


def _queries(panel: dict[str, Any]) -> str:
    return " ".join(target["expr"] for target in panel["targets"])


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells = [
        (panel["id"], x, y)
        for panel in panels
        for x in range(panel["gridPos"]["x"], panel["gridPos"]["x"] + panel["gridPos"]["w"])
        for y in range(panel["gridPos"]["y"], panel["gridPos"]["y"] + panel["gridPos"]["h"])
    ]
    assert len({(x, y) for _, x, y in cells}) == len(cells), "two panels share a grid cell"
    assert all(panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24 for panel in panels)


def test_the_live_vs_jobs_row_shows_each_lane_metric_by_lane() -> None:
    """The row issue 23 adds: one panel per lane metric, split by `lane`, placed under the row."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    (row,) = [panel for panel in panels if panel["type"] == "row"]
    assert row["title"] == "Live vs jobs" and row["collapsed"] is False and row["panels"] == []
    below = [panel for panel in panels if panel["gridPos"]["y"] > row["gridPos"]["y"]]
    by_metric = {
        metric: [panel for panel in below if metric in _queries(panel)]
        for metric in ("summarizer_lane_queue_wait_seconds_bucket", "summarizer_lane_engine_seconds_total",
                       "summarizer_lane_items_total", "summarizer_lane_preemptions_total")
    }  # fmt: skip
    assert all(len(found) == 1 for found in by_metric.values()), {m: len(f) for m, f in by_metric.items()}
    assert len(below) == 4
    for panel in below:
        assert re.search(r"\bby \((le, )?lane\)", _queries(panel)), panel["title"]
        assert [target["legendFormat"] for target in panel["targets"]] == ["{{lane}}"]
    (wait,) = by_metric["summarizer_lane_queue_wait_seconds_bucket"]
    assert _queries(wait).startswith("histogram_quantile(0.95, ") and wait["fieldConfig"]["defaults"]["unit"] == "s"
    # A share: each lane's engine time over all lanes' together, so the lanes add up to 1.
    (share,) = by_metric["summarizer_lane_engine_seconds_total"]
    numerator, _, denominator = _queries(share).partition(" / ")
    assert "sum by (lane) (rate(summarizer_lane_engine_seconds_total[5m]))" == numerator
    assert denominator.endswith("sum(rate(summarizer_lane_engine_seconds_total[5m]))")
    assert share["fieldConfig"]["defaults"]["unit"] == "percentunit"
