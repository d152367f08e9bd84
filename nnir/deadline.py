"""One `Deadline` value handed down a query, instead of `time.monotonic()` arithmetic at each step.

`Deadline.after(seconds)` starts the clock; `left()` is the time a step may take (None: no limit),
`expired()` says whether it has passed; `Deadline.none()` never expires. `at` is the
`time.monotonic()` value (or None) for the solver helpers that take one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

# A step is never handed less than this: a solver given 0 s may read it as "no limit".
MIN_STEP = 0.01


@dataclass(frozen=True)
class Deadline:
    """A point in `time.monotonic()` time (or none) by which a query must be answered."""

    at: float | None = None

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        """The deadline `seconds` from now (`None`: no deadline)."""
        return cls(None if seconds is None else time.monotonic() + float(seconds))

    @classmethod
    def none(cls) -> Deadline:
        """No deadline."""
        return cls(None)

    @classmethod
    def of(cls, limit: Deadline | float | None) -> Deadline:
        """`limit` if it is a Deadline, else `Deadline.after(limit)` (seconds or None)."""
        return limit if isinstance(limit, Deadline) else cls.after(limit)

    @property
    def bounded(self) -> bool:
        return self.at is not None

    def left(self, floor: float = MIN_STEP) -> float | None:
        """Seconds left, at least `floor` (None without a deadline): what a step may take."""
        return None if self.at is None else max(floor, self.at - time.monotonic())

    def remaining(self) -> float | None:
        """Seconds left, negative once passed (None without a deadline)."""
        return None if self.at is None else self.at - time.monotonic()

    def expired(self, margin: float = 0.0) -> bool:
        """Has the deadline passed (or is it less than `margin` seconds away)?"""
        return self.at is not None and self.at - time.monotonic() <= margin

    def cap(self, seconds: float | None) -> Deadline:
        """The earlier of this deadline and `seconds` from now (None: this deadline)."""
        if seconds is None:
            return self
        end = time.monotonic() + float(seconds)
        return Deadline(end if self.at is None else min(self.at, end))

    def share(self, fraction: float) -> float | None:
        """`fraction` of the time left (at least 0; None without a deadline)."""
        return None if self.at is None else max(0.0, self.at - time.monotonic()) * fraction
