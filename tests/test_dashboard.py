"""The Grafana dashboard (deploy/grafana/) checked against the metrics the code really exports.

Every PromQL query is read out of the dashboard's JSON model: the panels' targets, the
panels inside collapsed rows, and the template variables' ``label_values`` queries. The
metric names and labels they use are then compared with what a real worker's /metrics page
and the exporter's collector report here, on the test Redis, after work that makes every
metric appear at least once: a workflow that retries, one that fails, a result refused as
late, a task reclaimed from a silent worker, a durable timer waiting, a transient Redis error.

Queries are taken apart with regular expressions. Where promql-parser is installed, every
query is also parsed, and the regular expressions are checked against the syntax tree.
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator import Client, WorkflowFailureError, connection
from orchestrator.keys import CONSUMER_GROUP
from orchestrator.queue_metrics import QueueCollector

import defs
from helpers import eventually, returning, run, running_worker

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "orchestrator-dashboard.json"
QUEUE = "dashboard"
GRID_COLUMNS = 24

# Labels Prometheus attaches at scrape time: job and instance always, pod from the PodMonitor.
SCRAPE_LABELS = frozenset({"pod", "instance", "job"})
DATASOURCE_UIDS = frozenset({"${datasource}", "$datasource"})
RATE_WINDOW = "$__rate_interval"
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")

# What the dashboard must show, whatever else it does: for each, one panel at least queries
# one of these samples.
KEY_FAMILIES = {
    "queue backlog or lag": {"orchestrator_task_queue_backlog", "orchestrator_task_queue_lag"},
    "activity attempts": {"orchestrator_activity_attempts_total"},
    "activity latency": {
        "orchestrator_activity_schedule_to_start_seconds_bucket",
        "orchestrator_activity_execution_seconds_bucket",
    },
    "workflow end-to-end latency": {"orchestrator_workflow_end_to_end_seconds_bucket"},
    "worker slots": {"orchestrator_worker_slots_used", "orchestrator_worker_slots_available"},
    "Redis errors": {"orchestrator_redis_errors_total"},
}

# Grafana's interval variables: a duration stands in for them before a query is parsed.
GRAFANA_INTERVAL = re.compile(r"\$\{?__(?:rate_interval|interval|range)(?:_ms|_s)?\}?")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
METRIC = re.compile(r"(?<![A-Za-z0-9_:])orchestrator_[A-Za-z0-9_:]*")
IDENTIFIER_END = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*$")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"\"")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^()]*)\)")
VECTOR_MATCHING = re.compile(r"\b(?:on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
RANGE = re.compile(r"\[([^\]]*)\]")
IN_RATE = re.compile(r"\b(?:rate|irate|increase)\(\s*$")
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset"})
LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+),\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\)")


# -- reading the dashboard ------------------------------------------------------------------


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels kept inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard) if p.get("type") != "row"]


@dataclass(frozen=True)
class Query:
    where: str
    promql: str
    # label_values' label, which each metric of the selector must carry.
    labels: frozenset[str] = frozenset()
    panel: int | None = None


def queries(dashboard: dict[str, Any]) -> list[Query]:
    found = [
        Query(f"panel {p['title']!r} {t.get('refId')}", t["expr"], panel=p["id"])
        for p in data_panels(dashboard)
        for t in p.get("targets", [])
        if "expr" in t
    ]
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        text = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = LABEL_VALUES.fullmatch(text.strip())
        assert match, f"variable {var['name']}: expected label_values(selector, label): {text}"
        found.append(
            Query(f"variable {var['name']}", match["selector"], frozenset({match["label"]}))
        )
    return found


# -- taking PromQL apart ----------------------------------------------------------------------


def prepared(promql: str) -> str:
    """The query with Grafana's interval variables replaced by a duration PromQL accepts."""
    return GRAFANA_INTERVAL.sub("5m", promql)


@dataclass(frozen=True)
class Usage:
    """What a query asks of the metrics: each selector (metric name, labels it matches on)
    and each (metric, label) it groups or joins by."""

    selectors: tuple[tuple[str, frozenset[str]], ...]
    grouping: frozenset[tuple[str, str]]

    @property
    def metrics(self) -> set[str]:
        return {name for name, _ in self.selectors}

    def labels_used(self) -> set[tuple[str, str]]:
        matched = {(name, label) for name, labels in self.selectors for label in labels}
        return matched | self.grouping


def _balanced(text: str, start: int, step: int) -> str:
    """The bracketed group whose opening (step 1) or closing (step -1) paren is at start."""
    depth, i = 0, start
    while 0 <= i < len(text):
        depth += {"(": step, ")": -step}.get(text[i], 0)
        if depth == 0:
            return text[min(start, i) : max(start, i) + 1]
        i += step
    raise AssertionError(f"unbalanced parentheses in {text!r}")


def _aggregated(text: str, clause: re.Match[str]) -> str:
    """What a by/without clause applies to: ``sum by (x) (...)`` or ``sum(...) by (x)``."""
    after = text[clause.end() :]
    if after.lstrip().startswith("("):
        return _balanced(text, clause.end() + after.index("("), 1)
    before = text[: clause.start()].rstrip()
    return _balanced(text, len(before) - 1, -1)


def _names(labels: str) -> list[str]:
    return [label.strip() for label in labels.split(",") if label.strip()]


def regex_usage(query: Query) -> Usage:
    text = STRING.sub('""', prepared(query.promql))  # label values cannot confuse what follows
    selectors = []
    for match in METRIC.finditer(text):  # bare names: orchestrator's only
        if not text[match.end() :].lstrip().startswith("{"):
            selectors.append((match[0], frozenset()))
    for match in re.finditer(r"\{([^}]*)\}", text):
        before = IDENTIFIER_END.search(text[: match.start()])
        name = before[1] if before and before[1] not in KEYWORDS else "<unnamed>"
        selectors.append((name, frozenset(MATCHER.findall(match[1]))))
    everywhere = set(METRIC.findall(text))
    grouping = {
        (metric, label)
        for clause in GROUPING.finditer(text)
        for metric in METRIC.findall(_aggregated(text, clause))
        for label in _names(clause[1])
    }
    # A join's labels must be on every metric of the query, as must label_values' label.
    joined = [label for clause in VECTOR_MATCHING.finditer(text) for label in _names(clause[1])]
    grouping |= {(m, label) for m in everywhere for label in [*joined, *query.labels]}
    return Usage(_in_order(selectors), frozenset(grouping))


def _in_order(
    selectors: list[tuple[str, frozenset[str]]],
) -> tuple[tuple[str, frozenset[str]], ...]:
    return tuple(sorted(selectors, key=lambda s: (s[0], sorted(s[1]))))


def ast_usage(query: Query) -> Usage:
    """The same as :func:`regex_usage`, read from promql-parser's syntax tree."""
    import promql_parser as pp

    tree = pp.parse(prepared(query.promql))

    def selectors(node: Any) -> list[Any]:
        found: list[Any] = []
        pp.walk(node, lambda n: found.append(n) if isinstance(n, pp.VectorSelector) else None)
        return found

    def ours(node: Any) -> set[str]:
        return {s.name for s in selectors(node) if (s.name or "").startswith("orchestrator_")}

    nodes: list[Any] = []
    pp.walk(tree, nodes.append)
    grouping: set[tuple[str, str]] = set()
    joined = list(query.labels)
    for node in nodes:
        if isinstance(node, pp.AggregateExpr) and node.modifier is not None:
            grouping |= {(m, label) for m in ours(node.expr) for label in node.modifier.labels}
        if isinstance(node, pp.BinaryExpr) and node.modifier is not None:
            if node.modifier.matching is not None:
                joined += node.modifier.matching.labels
            joined += node.modifier.group_labels or []
    grouping |= {(m, label) for m in ours(tree) for label in joined}
    found = [
        (s.name or "<unnamed>", frozenset(m.name for m in s.matchers.matchers))
        for s in selectors(tree)
    ]
    return Usage(_in_order(found), frozenset(grouping))


# -- the dashboard alone --------------------------------------------------------------------


def test_dashboard_is_a_grafana_dashboard_model() -> None:
    dashboard = load()
    assert dashboard["title"] and dashboard["uid"]
    assert dashboard["schemaVersion"] >= 36
    assert dashboard.get("id") is None  # importable into any Grafana as a new dashboard
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "task_queue"):
        var = variables[name]
        assert var["type"] == "query" and var["multi"] and var["includeAll"], name
        assert var["datasource"]["uid"] in DATASOURCE_UIDS, name
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        assert var.get("definition", query) == query, f"{name}: definition is not its query"

    panels = list(all_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {sorted(ids)}"
    for panel in panels:
        pos = panel["gridPos"]
        assert all(isinstance(pos[k], int) for k in "xywh"), panel["title"]
        assert pos["w"] > 0 and pos["h"] > 0, panel["title"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= GRID_COLUMNS, panel["title"]
    for a, b in ((a, b) for i, a in enumerate(panels) for b in panels[i + 1 :]):
        assert not _overlap(a["gridPos"], b["gridPos"]), f"{a['title']} / {b['title']}"

    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    assert [r["title"] for r in rows] == [
        "Overview",
        "Task queues",
        "Activities",
        "Workflows",
        "Workers",
        "Timers",
    ]
    for panel in data_panels(dashboard):
        title = panel["title"]
        assert panel["datasource"]["uid"] in DATASOURCE_UIDS, title
        assert panel.get("description", "").strip(), f"{title}: no description"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        targets = panel["targets"]
        assert targets and all(t["expr"].strip() for t in targets), title
        assert len({t["refId"] for t in targets}) == len(targets), title
        for t in targets:
            assert t.get("datasource", panel["datasource"])["uid"] in DATASOURCE_UIDS, title


def _overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def test_queries_rate_counters_and_take_quantiles_of_buckets() -> None:
    for query in queries(load()):
        if query.panel is None:
            continue  # label_values may read any metric
        text = STRING.sub('""', query.promql)
        for window in RANGE.findall(text):
            assert window == RATE_WINDOW, f"{query.where}: range [{window}]"
        usage = regex_usage(query)
        for match in METRIC.finditer(text):
            name, rest = match[0], text[match.end() :]
            in_rate = bool(IN_RATE.search(text[: match.start()]))
            if name.endswith(COUNTER_SUFFIXES):
                after = re.sub(r"^\s*\{[^}]*\}", "", rest).lstrip()
                assert in_rate and after.startswith("["), f"{query.where}: {name} not rated"
            else:
                assert not in_rate, f"{query.where}: the gauge {name} inside rate()"
            if name.endswith("_bucket"):
                assert "histogram_quantile(" in text, f"{query.where}: {name}"
                assert (name, "le") in usage.grouping, f"{query.where}: {name} not by le"


def test_dashboard_shows_the_key_families() -> None:
    by_panel = {}
    for query in queries(load()):
        if query.panel is not None:
            by_panel.setdefault(query.panel, set()).update(regex_usage(query).metrics)
    for family, names in KEY_FAMILIES.items():
        assert any(used & names for used in by_panel.values()), f"no panel for {family}"


def test_queries_parse_as_promql() -> None:
    pytest.importorskip("promql_parser")
    for query in queries(load()):
        try:
            parsed = ast_usage(query)
        except ValueError as exc:
            raise AssertionError(f"{query.where}: {exc}\n{query.promql}") from None
        assert regex_usage(query) == parsed, query.where


# -- the dashboard against a real worker and exporter ------------------------------------------


def test_dashboard_uses_real_metric_names_and_labels(url: str) -> None:
    real = run(_real_samples(url))
    usages = [(q, regex_usage(q)) for q in queries(load())]

    unknown = sorted(
        f"{q.where}: {m}" for q, usage in usages for m in usage.metrics if m not in real.labels
    )
    assert not unknown, (
        f"metrics no worker or exporter reports: {unknown} "
        f"(families that reported no sample in this run: {sorted(real.silent)})"
    )
    wrong = sorted(
        f"{q.where}: {label!r} on {m} (whose labels are {sorted(real.labels[m])})"
        for q, usage in usages
        for m, label in usage.labels_used()
        if label not in real.labels[m] | SCRAPE_LABELS
    )
    assert not wrong, wrong
    # The variables filter every panel whose metric carries their label.
    unfiltered = sorted(
        f"{q.where}: {name} ignores ${label}"
        for q, usage in usages
        if q.panel is not None
        for name, matched in usage.selectors
        for label in ("namespace", "task_queue")
        if label in real.labels[name] and label not in matched
    )
    assert not unfiltered, unfiltered
    # And no metric goes unseen: a new one needs a panel. (prometheus-client also reports
    # each counter's and histogram's creation time, as a gauge ..._created: not charted.)
    shown = {real.family[m] for _, usage in usages for m in usage.metrics}
    families = set(real.family.values())
    ours = {f for f in families if f.startswith("orchestrator_") and not f.endswith("_created")}
    assert ours <= shown, f"metrics without a panel: {sorted(ours - shown)}"


@dataclass
class Scraped:
    """What the worker and the exporter reported: each sample name's label names, each
    sample name's family, and the families that reported no sample."""

    labels: dict[str, set[str]] = field(default_factory=dict)
    family: dict[str, str] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)

    def add(self, page: str) -> None:
        for family in text_string_to_metric_families(page):
            if not family.samples:
                self.silent.add(family.name)
            for sample in family.samples:
                self.labels.setdefault(sample.name, set()).update(sample.labels)
                self.family[sample.name] = family.name


async def _real_samples(url: str) -> Scraped:
    """A worker's /metrics page and the exporter's collector, after work that makes every
    metric report a sample."""
    registry = CollectorRegistry()
    async with await Client.connect(url) as client:
        # A workflow task read by a worker that then went silent: the next one reclaims it.
        stream = client.keys.workflow_tasks_for(QUEUE, "d-reclaimed")
        await client.redis.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
        reclaimed = await client.start_workflow("Hello", "r", id="d-reclaimed", task_queue=QUEUE)
        assert await client.redis.xreadgroup(CONSUMER_GROUP, "zombie", {stream: ">"}, count=1)
        async with running_worker(
            client,
            task_queue=QUEUE,
            workflows=defs.ALL_WORKFLOWS,
            activities=defs.ALL_ACTIVITIES,
            metrics_registry=registry,
            metrics_port=0,
            metrics_host="127.0.0.1",
            reclaim_idle=0.5,
        ) as worker:
            port = await eventually(lambda: returning(worker.metrics_port))
            assert await reclaimed.result(timeout=20) == "Hello r!"
            for name, args in (("Hello", ["x"]), ("Retries", [0.05]), ("Unhandled", ["boom"])):
                handle = await client.start_workflow(name, *args, id=f"d-{name}", task_queue=QUEUE)
                with contextlib.suppress(WorkflowFailureError):
                    await handle.result(timeout=20)
            # A run terminated while its activity runs: the activity's result is refused.
            late = await client.start_workflow("Gated", ["g"], id="d-late", task_queue=QUEUE)
            await eventually(lambda: client.redis.get("started:g"))
            await late.terminate("no longer needed")
            await client.redis.set("gate:g", 1)
            # A durable timer waiting, for the exporter's breakdown of timers by kind.
            sleeper = await client.start_workflow("Sleeper", 60, id="d-sleep", task_queue=QUEUE)
            # A transient Redis error, retried and counted by the code every Redis call uses.
            assert await connection.with_retry(_fails_once()) == "ok"

            wanted = {
                "orchestrator_late_results_refused_total",
                "orchestrator_tasks_reclaimed_total",
            }
            worker_page = await eventually(lambda: returning(_page_with(_scrape(port), wanted)))
            with redis.Redis.from_url(url, decode_responses=True) as sync:
                collector = QueueCollector(sync, ["default"], task_queues=[QUEUE])
                by_kind = {"orchestrator_timers_waiting_by_kind"}
                exporter_page = await eventually(
                    lambda: returning(_page_with(_render(collector), by_kind))
                )
            await sleeper.terminate("enough")

    scraped = Scraped()
    scraped.add(worker_page)
    scraped.add(exporter_page)
    return scraped


def _fails_once() -> Callable[[], Awaitable[str]]:
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise redis.exceptions.ConnectionError("connection reset by peer")
        return "ok"

    return call


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def _render(collector: QueueCollector) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


def _page_with(page: str, samples: set[str]) -> str | None:
    """The page, once it has a sample of each name in ``samples``."""
    names = {s.name for f in text_string_to_metric_families(page) for s in f.samples}
    return page if samples <= names else None
