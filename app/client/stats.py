"""Latency samples per request type, and their summary (count, mean, p50, p99)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

# The request types every report lists, in this order.
QUERY = "query"
ORDER = "order"
ORDER_CHECK = "order-check"
REQUEST_TYPES = (QUERY, ORDER, ORDER_CHECK)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Summary:
    request_type: str
    count: int
    mean_ms: float
    p50_ms: float
    p99_ms: float


@dataclass
class LatencyRecorder:
    """Seconds per request type. One per shopper thread, merged afterwards, so no lock."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, request_type: str, seconds: float) -> None:
        self.samples.setdefault(request_type, []).append(seconds)

    def count(self, request_type: str) -> int:
        return len(self.samples.get(request_type, ()))

    @classmethod
    def merged(cls, recorders: Iterable[LatencyRecorder]) -> LatencyRecorder:
        total = cls()
        for recorder in recorders:
            for request_type, values in recorder.samples.items():
                total.samples.setdefault(request_type, []).extend(values)
        return total

    def summaries(self) -> list[Summary]:
        """One summary per request type that has samples, in REQUEST_TYPES order."""
        found = []
        for request_type in REQUEST_TYPES:
            values = sorted(self.samples.get(request_type, ()))
            if values:
                found.append(
                    Summary(
                        request_type,
                        len(values),
                        1000 * sum(values) / len(values),
                        1000 * percentile(values, 0.50),
                        1000 * percentile(values, 0.99),
                    )
                )
        return found
