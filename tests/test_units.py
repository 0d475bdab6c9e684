"""Small pieces: keys, retry policy, timers, converter, errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from orchestrator import ApplicationError, ConfigurationError, RetryPolicy
from orchestrator.converter import failure_from_exception, to_type
from orchestrator.keys import Keys
from orchestrator.timers import Timer


def hash_tag(key: str) -> str:
    start = key.index("{")
    return key[start + 1 : key.index("}", start)]


@pytest.mark.parametrize("shards", [1, 7])
def test_every_key_of_a_workflow_shares_one_hash_tag(shards: int) -> None:
    k = Keys("prod", shards)
    wid = "order-42"
    shard = k.shard_of(wid)
    keys = [
        k.workflow(wid),
        k.run(wid, "r1"),
        k.history(wid, "r1"),
        k.activity(wid, "r1", 3),
        k.workflow_tasks_for("q", wid),
        k.activity_tasks_for("other", wid),
        k.timers_for(wid),
    ]
    assert {hash_tag(key) for key in keys} == {str(shard)}
    assert all(key.startswith("prod:") for key in keys)


def test_workflows_spread_over_shards() -> None:
    k = Keys("default", 4)
    assert {k.shard_of(f"wf-{i}") for i in range(100)} == {0, 1, 2, 3}


def test_retry_policy_defaults_match_temporal() -> None:
    wire = RetryPolicy().to_wire()
    assert wire["initial_ms"] == 1000
    assert wire["coefficient"] == 2.0
    assert wire["maximum_ms"] == 100_000
    assert wire["maximum_attempts"] == 0


def test_retry_delay_grows_and_caps() -> None:
    policy = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=5, jitter=0)
    assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    jittered = RetryPolicy(jitter=0.2)
    assert jittered.delay(1, rand=0.0) == pytest.approx(0.8)
    assert jittered.delay(1, rand=1.0) == pytest.approx(1.2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_interval": 0},
        {"backoff_coefficient": 0.5},
        {"maximum_attempts": -1},
        {"initial_interval": 2, "maximum_interval": 1},
        {"jitter": 1.5},
        {"initial_interval": -1},
    ],
)
def test_bad_retry_policies_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)


def test_timer_members_round_trip() -> None:
    timer = Timer("stc", "wf|with|bars", "run", 3, "1-0", "acts", "wfs")
    assert Timer.parse(timer.member()) == timer
    assert Timer.parse(timer.retry().member()).kind == "retry"


@dataclass
class Inner:
    value: int


@dataclass
class Outer:
    name: str
    items: list[Inner]


def test_dataclasses_are_rebuilt_from_json() -> None:
    rebuilt = to_type({"name": "x", "items": [{"value": 1}], "extra": 0}, Outer)
    assert rebuilt == Outer("x", [Inner(1)])


def test_failures_describe_the_exception() -> None:
    try:
        raise ApplicationError("card declined", {"code": 51}, type="Declined", non_retryable=True)
    except ApplicationError as exc:
        failure = failure_from_exception(exc, attempt=2)
    assert (failure.type, failure.message, failure.attempt) == ("Declined", "card declined", 2)
    assert failure.non_retryable and failure.details == [{"code": 51}]
    assert "card declined" in failure.stack


def test_optional_containers_and_datetimes_are_rebuilt() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 12, 4, 17, 0, tzinfo=UTC)
    assert to_type({"value": 1}, Inner | None) == Inner(1)
    assert to_type(None, Inner | None) is None
    assert to_type({"a": {"value": 2}}, dict[str, Inner]) == {"a": Inner(2)}
    assert to_type([{"value": 3}], tuple[Inner, ...]) == (Inner(3),)
    assert to_type(when.isoformat(), datetime) == when


def test_ids_with_control_characters_are_rejected() -> None:
    from orchestrator.client import check_name

    for bad in ("a\nb", " padded", "tab\t", "", "   "):
        with pytest.raises(ConfigurationError):
            check_name(bad, "workflow id")
    assert check_name("order-42/ok:yes", "workflow id") == "order-42/ok:yes"
