"""Small helpers for benchmark figures."""

from __future__ import annotations

from typing import Any


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def result(
    name: str, value: float, unit: str, floor_name: str, floor: float, *, lower_is_better: bool = False, **extra: Any
) -> dict[str, Any]:
    """One row of bench/results/*.json. `ratio` > 1 is always better than the floor."""
    if lower_is_better:
        ratio = floor / value if value else 0.0
    else:
        ratio = value / floor if floor else 0.0
    return {
        "name": name,
        "value": round(value, 2),
        "unit": unit,
        "floor_name": floor_name,
        "floor": round(floor, 2),
        "ratio": round(ratio, 3),
        **extra,
    }
