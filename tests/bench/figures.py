"""Figures: what a benchmark measured, run by run, and how it compares with its target."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile (`fraction` in 0..1) of `values`."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Figure:
    """One line of the table: a quantity measured once per run, summarised as median (min–max)."""

    point: str
    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    target: str = ""
    check: Callable[[float], bool] | None = None  # applied to the median
    direct: list[float] = field(default_factory=list)  # the same quantity without the web UI
    bound: str = ""  # what limits the figure: the server, the double, the client
    digits: int = 0
    note: str = ""

    def add(self, value: float | None, direct: float | None = None) -> None:
        if value is not None:
            self.values.append(value)
        if direct is not None:
            self.direct.append(direct)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    @property
    def met(self) -> bool | None:
        if self.check is None or not self.values:
            return None
        return bool(self.check(self.median))

    def shown(self, values: list[float]) -> str:
        if not values:
            return "–"
        middle = statistics.median(values)
        if len(values) == 1:
            return number(middle, self.digits)
        low, high = number(min(values), self.digits), number(max(values), self.digits)
        return f"{number(middle, self.digits)} ({low}–{high})"

    def as_dict(self) -> dict:
        return {
            "point": self.point,
            "name": self.name,
            "unit": self.unit,
            "values": self.values,
            "median": None if math.isnan(self.median) else self.median,
            "direct": self.direct,
            "target": self.target,
            "met": self.met,
            "bound": self.bound,
            "note": self.note,
        }


def number(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if digits == 0:
        return f"{round(value):,}"
    return f"{value:,.{digits}f}"
