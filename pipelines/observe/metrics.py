"""Our Prometheus metrics, served on BentoML's `/metrics` next to its own (summed over workers).

Every label has a bounded set of values: configured style names, engine names, entity types,
stage and state names. Never a document id, a token or anything from a request body.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DOCUMENTS = Counter(
    "summarizer_documents", "Documents summarized or failed, by style, engine and outcome", ["style", "engine", "outcome"]
)
INPUT_CHARS = Histogram(
    "summarizer_input_chars", "Characters of submitted text", buckets=(200, 1_000, 5_000, 20_000, 100_000, 1_000_000)
)
SUMMARY_WORDS = Histogram("summarizer_summary_words", "Words per summary", buckets=(10, 25, 50, 100, 200, 400))
STAGE_SECONDS = Histogram(
    "summarizer_stage_seconds",
    "Time per pipeline stage: normalize, redact, retrieve, model (model includes queueing and batching)",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
REDACTIONS = Counter("summarizer_redactions", "PII entities redacted, by type", ["entity"])
JOB_DOCUMENTS = Counter("summarizer_job_documents", "Job documents recorded: done, failed, or retried later", ["state"])
JOBS = Counter("summarizer_jobs", "Job transitions: submitted, completed, cancelled, failed", ["status"])
AUTH_FAILURES = Counter("summarizer_auth_failures", "Refused requests: missing, malformed, unknown, revoked, scope", ["reason"])

# Model-worker scheduling (pipelines/scheduling/): live and job work apart. Batch share of a lane is
# rate(summarizer_lane_engine_seconds) over the sum of all lanes' rates.
LANE_WAIT = Histogram(
    "summarizer_lane_queue_wait_seconds",
    "Time model work waited for the engine, by lane (live, long, job)",
    ["lane"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
LANE_ENGINE_SECONDS = Counter(
    "summarizer_lane_engine_seconds", "Engine time spent on each lane's work (nested work excluded)", ["lane"]
)
LANE_ITEMS = Counter("summarizer_lane_items", "Documents (or texts to embed) the engine finished, by lane", ["lane"])
LANE_PREEMPTIONS = Counter(
    "summarizer_lane_preemptions", "Times a lane's work ran at a preemption point inside lower-lane work", ["lane"]
)
