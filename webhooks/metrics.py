"""Prometheus metrics of the webhook tier, on the default registry (served at `/metrics` by the API).

Label values come from fixed sets (provider names, outcomes, reasons), never from requests, so a flood of odd
deliveries cannot create unbounded time series.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from odin.controller.metrics import WEBHOOK_DELIVERIES

# Defined once in the controller (the API's /metrics documents it too); counted here.
DELIVERIES = WEBHOOK_DELIVERIES
REJECTIONS = Counter(
    "odin_webhook_rejections_total",
    "Rejected webhook deliveries by reason (bad_signature, missing_signature, no_secret, unknown_repository, "
    "wrong_secret, too_large, malformed, sha_not_found, run_rejected).",
    ["provider", "reason"],
)
HANDLING = Histogram(
    "odin_webhook_handling_seconds",
    "Time from a delivery's body being read to its answer.",
    ["provider"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
STATUS_POSTS = Counter(
    "odin_commit_status_posts_total",
    "Commit statuses sent to a provider, by result (ok, retried, failed, dropped).",
    ["provider", "result"],
)
STATUS_PENDING = Gauge("odin_commit_status_pending", "Commit statuses waiting to be sent.", ["provider"])
