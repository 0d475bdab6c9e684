"""Retry policy of activities, with Temporal's defaults.

The policy travels with each activity and is applied by the Lua scripts that
fail or time out an attempt (``scripts/lib/retry.lua``), so a retry decision is
made atomically with the failure it follows, by whichever process reports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .errors import ConfigurationError

Duration = timedelta | float | int


def to_seconds(value: Duration | None, name: str) -> float | None:
    """Accept a timedelta or a number of seconds; reject negatives with a clear error."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        raise ConfigurationError(f"{name} must not be negative (got {seconds} s)")
    return seconds


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How an activity is retried after a failure or a timeout.

    ``maximum_attempts=0`` means unlimited; ``maximum_interval`` defaults to
    100 times ``initial_interval``. ``jitter`` spreads each delay by up to that
    fraction either way so that a burst of failures does not retry in lockstep.
    """

    initial_interval: Duration = 1.0
    backoff_coefficient: float = 2.0
    maximum_interval: Duration | None = None
    maximum_attempts: int = 0
    non_retryable_error_types: Sequence[str] = field(default_factory=tuple)
    jitter: float = 0.1

    def __post_init__(self) -> None:
        initial = to_seconds(self.initial_interval, "initial_interval")
        if not initial:
            raise ConfigurationError("initial_interval must be positive")
        if self.backoff_coefficient < 1:
            raise ConfigurationError("backoff_coefficient must be >= 1")
        maximum = to_seconds(self.maximum_interval, "maximum_interval")
        if maximum is not None and maximum < initial:
            raise ConfigurationError("maximum_interval must be >= initial_interval")
        if self.maximum_attempts < 0:
            raise ConfigurationError("maximum_attempts must be >= 0 (0 means unlimited)")
        if not 0 <= self.jitter < 1:
            raise ConfigurationError("jitter must be in [0, 1)")

    def to_wire(self) -> dict[str, Any]:
        """The form the Lua scripts read: milliseconds and plain lists."""
        initial = to_seconds(self.initial_interval, "initial_interval") or 1.0
        maximum = to_seconds(self.maximum_interval, "maximum_interval") or initial * 100
        return {
            "initial_ms": int(initial * 1000),
            "coefficient": float(self.backoff_coefficient),
            "maximum_ms": int(maximum * 1000),
            "maximum_attempts": self.maximum_attempts,
            "non_retryable": list(self.non_retryable_error_types),
            "jitter": self.jitter,
        }

    def delay(self, attempt: int, rand: float = 0.5) -> float:
        """Seconds to wait after ``attempt`` failed; mirrors ``retry.lua`` for docs and tests."""
        wire = self.to_wire()
        base = min(wire["initial_ms"] * wire["coefficient"] ** (attempt - 1), wire["maximum_ms"])
        return base * (1 + wire["jitter"] * (2 * rand - 1)) / 1000
