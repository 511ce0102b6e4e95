"""A wall-clock budget for a batch job, with a running estimate of the total.

After ``done`` of ``total`` items in ``t`` seconds, the estimate of the whole job is
``t * total / done``; the next batch of ``n`` items is started only while
``t + n * t / done <= seconds`` (a budget of 0 is unlimited). Kaggle stops a notebook at its
run-time limit and scores nothing, so a job that keeps inside its budget and leaves the rest
of the rows empty still scores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class TimeBudget:
    """``seconds`` of wall-clock from creation (0: unlimited); see the module docstring."""

    seconds: float = 0.0
    start: float = field(default_factory=time.perf_counter)

    def __post_init__(self):
        if self.seconds < 0:
            raise ValueError(f"a time budget must be >= 0 seconds, not {self.seconds}")

    def elapsed(self) -> float:
        """Seconds since the budget started."""
        return time.perf_counter() - self.start

    def estimate(self, done: int, total: int) -> float:
        """Estimated seconds for all ``total`` items after ``done`` (inf before the first)."""
        return self.elapsed() * total / done if done else float("inf")

    def allows(self, done: int, upcoming: int) -> bool:
        """Whether ``upcoming`` more items still fit, at the rate of the ``done`` so far."""
        if not self.seconds:
            return True
        elapsed = self.elapsed()
        per_item = elapsed / done if done else 0.0
        return elapsed + upcoming * per_item <= self.seconds
