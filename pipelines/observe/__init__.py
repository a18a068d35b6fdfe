"""What operators see, and never PII: Prometheus `metrics`, OpenTelemetry `traces`, JSON
`log_format`, the per-request record and its ASGI middleware (`request_log`), and `stages`, which
records a stage or a document as a metric, a span and a log field in one call.

May import: http.
"""
