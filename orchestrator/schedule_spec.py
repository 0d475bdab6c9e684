"""When a schedule fires: cron and interval specs, and what to do after downtime.

Pure arithmetic on epoch milliseconds (UTC), no Redis: the driver in
``schedules.py`` computes here what the schedule scripts then apply, since Lua
cannot parse cron. Cron expressions are read by croniter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import CroniterError, croniter

from .errors import ConfigurationError

MIN_INTERVAL_MS = 1000
# Counting the missed fire times of a cron schedule means visiting each one;
# past this many the count stops growing, so that a long outage of a
# per-second schedule cannot stall the driver.
MAX_COUNTED_MISSES = 1000


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _ms_of(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def to_milliseconds(value: timedelta | float, what: str) -> int:
    if isinstance(value, timedelta):
        return round(value.total_seconds() * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return round(value * 1000)
    raise ConfigurationError(f"{what} must be a timedelta or a number of seconds (got {value!r})")


def format_fire_time(ms: int) -> str:
    """A fire time as UTC ISO-8601, ``2026-12-04T17:30:00Z``; milliseconds only when non-zero."""
    text = to_datetime(ms).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"


def workflow_id_for(prefix: str, fire_time_ms: int) -> str:
    """The id of the workflow a firing starts: the same for every driver acting on it."""
    return f"{prefix}-{format_fire_time(fire_time_ms)}"


def _check_cron(expression: str) -> None:
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise ConfigurationError(
            f"invalid cron expression {expression!r}: expected 5 fields "
            "(minute hour day-of-month month day-of-week), or 6 with seconds last"
        )
    try:
        croniter(expression, datetime.now(UTC)).get_next(datetime)
    except (CroniterError, ValueError) as exc:
        raise ConfigurationError(f"invalid cron expression {expression!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """When a schedule fires: a cron expression or a fixed interval (exactly one), in UTC.

    ``cron`` takes croniter's syntax: five fields, six with seconds last, or a
    shortcut like ``@hourly``. An ``interval`` (a timedelta or seconds, at least
    one second) fires at its multiples since the Unix epoch, as Temporal's
    does: every 5 s fires at :00, :05, :10, whenever the schedule was created.
    """

    cron: str | None = None
    interval: timedelta | float | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise ConfigurationError("a schedule spec needs exactly one of cron and interval")
        if self.timezone != "UTC":
            raise ConfigurationError(f"only the UTC timezone is supported (got {self.timezone!r})")
        if self.cron is not None:
            _check_cron(self.cron)
        elif self.interval_ms < MIN_INTERVAL_MS:
            raise ConfigurationError(
                f"a schedule interval must be at least 1 s (got {self.interval})"
            )
        else:
            # Seconds become a timedelta, so that equal specs compare equal.
            object.__setattr__(self, "interval", timedelta(milliseconds=self.interval_ms))

    @property
    def interval_ms(self) -> int:
        if self.interval is None:
            return 0
        return to_milliseconds(self.interval, "interval")

    def next_after(self, ms: int) -> int:
        """The first fire time strictly after ``ms`` (epoch milliseconds)."""
        if self.cron is None:
            step = self.interval_ms
            return (ms // step + 1) * step
        return _ms_of(croniter(self.cron, to_datetime(ms)).get_next(datetime))

    def latest_at_or_before(self, ms: int) -> int:
        """The last fire time at or before ``ms``."""
        if self.cron is None:
            step = self.interval_ms
            return ms // step * step
        return _ms_of(croniter(self.cron, to_datetime(ms + 1)).get_prev(datetime))

    def count_between(self, first: int, last: int) -> int:
        """How many fire times lie in ``[first, last)``, ``first`` being one (cron: capped)."""
        if last <= first:
            return 0
        if self.cron is None:
            return (last - first) // self.interval_ms
        times = croniter(self.cron, to_datetime(first))
        count, moment = 1, first
        while count < MAX_COUNTED_MISSES:
            moment = _ms_of(times.get_next(datetime))
            if moment >= last:
                break
            count += 1
        return count

    def upcoming(self, first: int, count: int) -> list[int]:
        """``count`` fire times from ``first`` (itself a fire time) on."""
        times = [first]
        while len(times) < count:
            times.append(self.next_after(times[-1]))
        return times

    def to_dict(self) -> dict[str, Any]:
        return {"cron": self.cron, "interval_ms": self.interval_ms or None, "timezone": "UTC"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduleSpec:
        interval_ms = data.get("interval_ms")
        return cls(
            cron=data.get("cron"),
            interval=timedelta(milliseconds=interval_ms) if interval_ms else None,
            timezone=data.get("timezone") or "UTC",
        )


@dataclass(frozen=True, slots=True)
class FirePlan:
    """What a driver does about a schedule whose next fire time has passed."""

    fire_time: int | None  # the fire time to act on; None when every one due was missed
    missed: int  # fire times passed over, to add to the schedule's missed count
    next_fire: int  # the schedule's next fire time afterwards


def plan_firing(spec: ScheduleSpec, due: int, now: int, catchup_window_ms: int) -> FirePlan:
    """Plan for a schedule whose stored next fire time ``due`` is at or before ``now``.

    Only the latest fire time due is acted on, and only if it is within the
    catch-up window; every earlier one counts as missed. So a driver that was
    down for a while fires once, late, and never a burst.
    """
    latest = max(due, spec.latest_at_or_before(now))
    missed = spec.count_between(due, latest)
    if latest < now - catchup_window_ms:
        return FirePlan(None, missed + 1, spec.next_after(latest))
    return FirePlan(latest, missed, spec.next_after(latest))
