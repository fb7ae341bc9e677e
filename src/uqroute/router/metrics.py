"""Prometheus metrics of a router (``GET /metrics``, the text format vLLM's server exposes too).

Every name starts with ``uqroute_router_``; docs/router.md lists them. Each router has its own
``prometheus_client.CollectorRegistry`` (no global state), rendered by :meth:`RouterMetrics.render`.
"""

from __future__ import annotations

import math

__all__ = ["RouterMetrics", "CONTENT_TYPE", "render_all"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)


class RouterMetrics:
    def __init__(self, router_name: str, target_fraction: float, drift_margin: float):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        labels = {"router": router_name}
        self.requests = Counter(
            "uqroute_router_requests",
            "Chat requests answered, by the model that answered (slm, llm, slm_fallback) and status (ok, error).",
            ["router", "answered_by", "status"],
            registry=r,
        )
        self.rejected = Counter(
            "uqroute_router_rejected_requests",
            "Requests refused with a 4xx (malformed, unknown model, too long).",
            ["router", "code"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "uqroute_router_upstream_errors",
            "Upstream calls that failed after the client's retries.",
            ["router", "code"],
            registry=r,
        )
        self.disconnects = Counter(
            "uqroute_router_client_disconnects",
            "Routed streams the client left before their end.",
            ["router"],
            registry=r,
        )
        self.latency = Histogram(
            "uqroute_router_request_seconds",
            "End-to-end request latency.",
            ["router", "answered_by"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.slm_latency = Histogram(
            "uqroute_router_slm_seconds",
            "SLM answer + confidence latency (queueing and the shared engine).",
            ["router"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.confidence_seconds = Histogram(
            "uqroute_router_confidence_seconds",
            "Time to turn the engine's results into the confidence (parsing, the UQ method, the probe).",
            ["router"],
            buckets=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1),
            registry=r,
        )
        self.upstream_latency = Histogram(
            "uqroute_router_upstream_seconds",
            "Upstream LLM latency (to the full answer, or the stream's end).",
            ["router"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.confidence = Histogram(
            "uqroute_router_confidence",
            "Live confidences.",
            ["router"],
            buckets=tuple(i / 20 for i in range(1, 21)),
            registry=r,
        )
        self.realised = Gauge(
            "uqroute_router_llm_fraction_realised",
            "Realised LLM-call fraction over the live window.",
            ["router"],
            registry=r,
        )
        self.target = Gauge(
            "uqroute_router_llm_fraction_target",
            "The target LLM-call fraction (the operating point).",
            ["router"],
            registry=r,
        )
        self.margin = Gauge("uqroute_router_drift_margin", "Drift margin around the target.", ["router"], registry=r)
        self.drift = Gauge(
            "uqroute_router_drift",
            "1 while the realised fraction is farther than the margin from the target.",
            ["router"],
            registry=r,
        )
        self.w1 = Gauge(
            "uqroute_router_w1_holdout",
            "Wasserstein-1 distance between the live window's confidences and the hold-out set's.",
            ["router"],
            registry=r,
        )
        self.window = Gauge("uqroute_router_window_requests", "Requests in the live window.", ["router"], registry=r)
        self.threshold = Gauge(
            "uqroute_router_threshold", "The threshold the next request is decided with.", ["router"], registry=r
        )
        self.q = Gauge("uqroute_router_threshold_q", "Its tied fraction q.", ["router"], registry=r)
        self.in_flight = Gauge("uqroute_router_requests_in_flight", "Requests being answered.", ["router"], registry=r)
        self.engine_requests = Gauge(
            "uqroute_router_engine_requests", "Requests in the SLM's engine now.", ["router"], registry=r
        )
        self.engine_peak = Gauge(
            "uqroute_router_engine_requests_peak",
            "Most requests in the SLM's engine at once since start "
            "(concurrent requests share its continuous-batching pool).",
            ["router"],
            registry=r,
        )
        self.engine_steps = Gauge(
            "uqroute_router_engine_steps", "Scheduling steps of the SLM's engine since start.", ["router"], registry=r
        )
        self.labels = labels
        self.target.labels(**labels).set(target_fraction)
        self.margin.labels(**labels).set(drift_margin)

    def observe_decision(self, confidence: float, state, threshold: float, q: float) -> None:
        lab = self.labels
        if not math.isnan(confidence):
            self.confidence.labels(**lab).observe(confidence)
        self.realised.labels(**lab).set(state.realised_fraction)
        self.w1.labels(**lab).set(state.w1)
        self.window.labels(**lab).set(state.n)
        self.drift.labels(**lab).set(1.0 if state.drifting else 0.0)
        self.threshold.labels(**lab).set(threshold)
        self.q.labels(**lab).set(q)

    def render(self, worker=None) -> bytes:
        from prometheus_client import generate_latest

        if worker is not None:
            self.engine_requests.labels(**self.labels).set(worker.in_flight)
            self.engine_peak.labels(**self.labels).set(worker.peak_in_flight)
            self.engine_steps.labels(**self.labels).set(worker.steps)
        return generate_latest(self.registry)


class _Merged:
    """Several routers' registries as one: each metric family once, with every router's samples."""

    def __init__(self, registries):
        self.registries = list(registries)

    def collect(self):
        families: dict = {}
        for reg in self.registries:
            for fam in reg.collect():
                if fam.name in families:
                    families[fam.name].samples.extend(fam.samples)
                else:
                    families[fam.name] = fam
        return list(families.values())


def render_all(pairs) -> bytes:
    """The Prometheus text of several routers, ``pairs`` of (:class:`RouterMetrics`, engine worker): one family per
    metric name (the text format allows each name once), a ``router`` label on every sample."""
    from prometheus_client import generate_latest

    pairs = list(pairs)
    for m, worker in pairs:
        m.render(worker)  # refresh the engine gauges
    return generate_latest(_Merged(m.registry for m, _ in pairs))
