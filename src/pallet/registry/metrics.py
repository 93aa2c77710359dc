"""Prometheus metrics in the text exposition format, kept by hand (no client library).

Recording a request is a couple of dict updates, cheap enough for the hot path.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._hist: dict[tuple[str, str], list[int]] = {}
        self._hist_sum: dict[tuple[str, str], float] = defaultdict(float)
        self.counters: dict[str, int] = defaultdict(int)
        self.gauges: dict[str, float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        key = (method, route)
        hist = self._hist.get(key)
        if hist is None:
            hist = self._hist[key] = [0] * (len(_BUCKETS) + 1)
        hist[bisect.bisect_left(_BUCKETS, seconds)] += 1
        self._hist_sum[key] += seconds

    def inc(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def render(self) -> str:
        out = [
            "# HELP pallet_registry_http_requests_total HTTP requests by method, route and status.",
            "# TYPE pallet_registry_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            labels = _labels((("method", method), ("route", route), ("status", str(status))))
            out.append(f"pallet_registry_http_requests_total{labels} {n}")
        out += [
            "# HELP pallet_registry_http_request_duration_seconds Request latency.",
            "# TYPE pallet_registry_http_request_duration_seconds histogram",
        ]
        for (method, route), hist in sorted(self._hist.items()):
            running = 0
            base = (("method", method), ("route", route))
            for bound, n in zip((*_BUCKETS, float("inf")), hist, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                labels = _labels((*base, ("le", le)))
                out.append(
                    f"pallet_registry_http_request_duration_seconds_bucket{labels} {running}"
                )
            out.append(
                f"pallet_registry_http_request_duration_seconds_sum{_labels(base)} "
                f"{self._hist_sum[(method, route)]:.6f}"
            )
            out.append(
                f"pallet_registry_http_request_duration_seconds_count{_labels(base)} {running}"
            )
        for name, value in sorted(self.counters.items()):
            out.append(f"# TYPE pallet_registry_{name}_total counter")
            out.append(f"pallet_registry_{name}_total {value}")
        for name, fvalue in sorted(self.gauges.items()):
            out.append(f"# TYPE pallet_registry_{name} gauge")
            out.append(f"pallet_registry_{name} {fvalue}")
        out.append("# TYPE pallet_registry_uptime_seconds gauge")
        out.append(f"pallet_registry_uptime_seconds {time.time() - self.started:.3f}")
        return "\n".join(out) + "\n"
