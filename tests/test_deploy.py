"""The Kubernetes manifests (deploy/k8s/) and the Dockerfile, checked offline.

Every kustomization is rendered with ``kubectl kustomize``. Built-in resources are validated
strictly (unknown fields fail) against Kubernetes 1.30's schemas, which kubernetes-validate
ships; KEDA's and prometheus-operator's against the schemas pinned in tests/k8s_schemas/
(its README says where they come from). Then what must agree across files is checked: the
KEDA triggers against ``orchestrator.keys`` and the worker's environment, probes against
ports, the PodMonitor against the pods, the pods' hardening, the manifests against the
Dockerfile, and every container's arguments against the ``orchestrator`` command itself.

Without kubectl the rendering tests are skipped on a developer machine but fail in CI
(CI=true), as tests/conftest.py does for redis-server.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import typer
import yaml

from orchestrator.cli import app as cli_app
from orchestrator.keys import CONSUMER_GROUP, Keys

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "k8s_schemas"
DOCKERFILE = ROOT / "Dockerfile"

KUBERNETES_VERSION = "1.30"
KUBERNETES_NAMESPACE = "orchestrator"
WORKER = "orchestrator-worker"
EXPORTER = "orchestrator-metrics"
REDIS_SECRET = ("redis-auth", "password")
METRICS_PORT_NAME = "metrics"
# The worker's steps after SIGTERM besides the graceful drain: it stops polling (up to
# ~3 s) and, after the drain, reports its unfinished attempts.
SHUTDOWN_OVERHEAD_SECONDS = 3

# What every orchestrator process must agree on.
SHARED_SETTINGS = (
    "ORCHESTRATOR_REDIS_URL",
    "ORCHESTRATOR_NAMESPACE",
    "ORCHESTRATOR_REDIS_PASSWORD",
)

# What each overlay adds to the base; a component dropped by mistake fails here.
OVERLAY_EXTRAS = {
    "overlays/dev": {"Secret", "Job"},
    "overlays/production": {"ScaledObject", "TriggerAuthentication", "PodMonitor"},
    "overlays/production-hpa": {"HorizontalPodAutoscaler", "PodMonitor"},
}

# Custom resources and their pinned schemas (tests/k8s_schemas/README.md).
CUSTOM_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_triggerauthentication.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com_v1_podmonitor.json",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "Job"}
CLUSTER_SCOPED_KINDS = {"Namespace"}

KUSTOMIZATIONS = sorted(
    str(path.parent.relative_to(K8S))
    for path in K8S.glob("**/kustomization.yaml")
    if yaml.safe_load(path.read_text())["kind"] == "Kustomization"
)
OVERLAYS = [name for name in KUSTOMIZATIONS if name.startswith("overlays/")]

Resource = dict[str, Any]


# --- rendering ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kubectl() -> str:
    """Path of kubectl on PATH; skips the test locally, fails it in CI, when missing."""
    path = shutil.which("kubectl")
    if path is not None:
        return path

    message = "kubectl is not on PATH (it renders deploy/k8s/ with `kubectl kustomize`)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@functools.cache
def _render(kubectl: str, kustomization: str) -> tuple[Resource, ...]:
    proc = subprocess.run(
        [kubectl, "kustomize", str(K8S / kustomization)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize {kustomization} failed:\n{proc.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


@pytest.fixture(params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest, kubectl: str) -> list[Resource]:
    """The resources of one kustomization (a fresh copy: tests may not share edits)."""
    return copy.deepcopy(list(_render(kubectl, request.param)))


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, kubectl: str) -> list[Resource]:
    """The resources of one overlay: what a user applies."""
    return copy.deepcopy(list(_render(kubectl, request.param)))


def _named(resources: list[Resource], kind: str, name: str) -> Resource:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
    return found[0]


def _of_kind(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def _label(resource: Resource) -> str:
    return f"{resource['kind']} {resource['metadata'].get('name')!r}"


def _containers(pod_owner: Resource) -> list[Resource]:
    spec = pod_owner["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def _pod_owners(resources: list[Resource]) -> Iterator[Resource]:
    return (r for r in resources if r["kind"] in POD_TEMPLATE_KINDS)


def _env(container: Resource, resources: list[Resource]) -> dict[str, Any]:
    """The container's environment: envFrom ConfigMaps first, then env (which wins).

    A plain value maps to its string; a reference (secretKeyRef, ...) to its valueFrom dict.
    """
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        assert ref is not None, f"only ConfigMaps are expected in envFrom, got {source}"
        env.update(_named(resources, "ConfigMap", ref["name"]).get("data", {}))
    for var in container.get("env", []):
        env[var["name"]] = var["value"] if "value" in var else var["valueFrom"]
    return env


def _runs_orchestrator(container: Resource) -> bool:
    """Whether the container runs this project's image (whatever registry and tag)."""
    return container["image"].split("/")[-1].split("@")[0].split(":")[0] == "orchestrator"


def _worker_container(resources: list[Resource]) -> Resource:
    containers = _named(resources, "Deployment", WORKER)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "the worker pod runs one container"
    return containers[0]


def test_every_overlay_is_found() -> None:
    assert {"overlays/dev", "overlays/production", "overlays/production-hpa"} <= set(OVERLAYS)


def test_renders_into_one_namespace_with_one_label(rendered: list[Resource]) -> None:
    assert rendered, "rendered nothing"
    seen: set[tuple[str, str]] = set()
    for resource in rendered:
        key = (resource["kind"], resource["metadata"]["name"])
        assert key not in seen, f"{_label(resource)} is rendered twice"
        seen.add(key)
        # What `kubectl get all,... -l app.kubernetes.io/part-of=orchestrator` lists.
        labels = resource["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "orchestrator", _label(resource)
        if resource["kind"] not in CLUSTER_SCOPED_KINDS:
            # A resource without a namespace lands in whatever namespace kubectl points at.
            assert resource["metadata"].get("namespace") == KUBERNETES_NAMESPACE, (
                f"{_label(resource)} is not in namespace {KUBERNETES_NAMESPACE!r}"
            )


@pytest.mark.parametrize("name", sorted(OVERLAY_EXTRAS))
def test_overlays_add_their_pieces(kubectl: str, name: str) -> None:
    base = {r["kind"] for r in _render(kubectl, "base")}
    kinds = {r["kind"] for r in _render(kubectl, name)}
    assert kinds - base == OVERLAY_EXTRAS[name]


# --- schemas ------------------------------------------------------------------------------


def test_builtin_resources_match_kubernetes_schemas(rendered: list[Resource]) -> None:
    errors = []
    for resource in rendered:
        if (resource["apiVersion"], resource["kind"]) in CUSTOM_SCHEMAS:
            continue
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{_label(resource)}: no schema for {resource['apiVersion']}")
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(part) for part in exc.path)
            errors.append(f"{_label(resource)} at /{path}: {exc.message}")
    assert not errors, "\n".join(errors)


def _closed(schema: Any) -> Any:
    """``schema`` with unknown fields refused wherever it lists the known ones.

    That is how the API server treats a CRD's structural schema: a field the schema does
    not declare is dropped (or, with kubectl's default strict field validation, refused)
    unless the object allows any (additionalProperties, x-kubernetes-preserve-unknown-fields).
    Plain JSON Schema would accept it silently, so a misspelt field would pass here.
    """
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


@functools.cache
def _custom_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / CUSTOM_SCHEMAS[api_version, kind]).read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(_closed(schema))


def test_custom_resources_match_pinned_schemas(rendered: list[Resource]) -> None:
    errors = []
    for resource in rendered:
        key = (resource["apiVersion"], resource["kind"])
        if key not in CUSTOM_SCHEMAS:
            continue
        for error in _custom_validator(*key).iter_errors(resource):
            path = "/".join(str(part) for part in error.absolute_path)
            errors.append(f"{_label(resource)} at /{path}: {error.message}")
    assert not errors, "\n".join(errors)


def test_closed_schema_refuses_a_misspelt_field() -> None:
    """The strictness above is real: a typo in a ScaledObject does not pass."""
    scaled_object = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {
            "scaleTargetRef": {"name": "x"},
            "triggers": [{"type": "redis-streams", "metadata": {"stream": "s"}}],
            "maxReplicas": 3,  # the HPA's spelling, not KEDA's maxReplicaCount
        },
    }
    errors = list(_custom_validator("keda.sh/v1alpha1", "ScaledObject").iter_errors(scaled_object))
    assert [e.message for e in errors] == [
        "Additional properties are not allowed ('maxReplicas' was unexpected)"
    ]


# --- autoscaling --------------------------------------------------------------------------


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def _expected_streams(env: dict[str, Any]) -> set[str]:
    # One shard: the namespace's count lives in Redis (``ns:meta``), 1 unless chosen
    # otherwise; with N, the triggers need every shard from 0 to N-1.
    keys = Keys(env["ORCHESTRATOR_NAMESPACE"])
    queue = env["ORCHESTRATOR_TASK_QUEUE"]
    return {keys.activity_tasks(queue, 0), keys.workflow_tasks(queue, 0)}


def test_keda_triggers_watch_the_workers_streams(overlay: list[Resource]) -> None:
    env = _env(_worker_container(overlay), overlay)
    url = urlsplit(env["ORCHESTRATOR_REDIS_URL"])
    service = _named(overlay, "Service", url.hostname)
    service_ports = {p["port"] for p in service["spec"]["ports"]}
    # KEDA's operator runs in a namespace of its own: it needs the Service's full name.
    expected_host = f"{url.hostname}.{KUBERNETES_NAMESPACE}.svc.cluster.local"

    for scaled_object in _of_kind(overlay, "ScaledObject"):
        assert scaled_object["spec"]["scaleTargetRef"]["name"] == WORKER
        assert scaled_object["spec"].get("minReplicaCount", 0) >= 1, (
            "with no worker running, due timers, retries and schedules never fire"
        )

        watched = set()
        for trigger in scaled_object["spec"]["triggers"]:
            meta = trigger["metadata"]
            assert trigger["type"] == "redis-streams"
            assert meta["consumerGroup"] == CONSUMER_GROUP
            # Lag mode, for which KEDA also requires activationLagCount; pendingEntriesCount
            # or streamLength would switch the trigger to another mode.
            assert {"lagCount", "activationLagCount"} <= set(meta)
            assert not {"pendingEntriesCount", "streamLength"} & set(meta)

            host, port = _split_address(meta["address"])
            assert host == expected_host, "the trigger must reach the Redis the worker uses"
            assert port == (url.port or 6379)
            assert port in service_ports
            assert meta.get("databaseIndex", "0") == (url.path.lstrip("/") or "0")
            watched.add(meta["stream"])
        assert watched == _expected_streams(env)


def test_keda_authenticates_with_the_workers_secret(overlay: list[Resource]) -> None:
    env = _env(_worker_container(overlay), overlay)
    secret_ref = env["ORCHESTRATOR_REDIS_PASSWORD"]["secretKeyRef"]

    for scaled_object in _of_kind(overlay, "ScaledObject"):
        for trigger in scaled_object["spec"]["triggers"]:
            name = trigger["authenticationRef"]["name"]
            auth = _named(overlay, "TriggerAuthentication", name)
            by_parameter = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
            assert by_parameter["password"]["name"] == secret_ref["name"]
            assert by_parameter["password"]["key"] == secret_ref["key"]


def test_one_autoscaler_at_most_and_never_for_the_exporter(overlay: list[Resource]) -> None:
    hpas = _of_kind(overlay, "HorizontalPodAutoscaler")
    scaled_objects = _of_kind(overlay, "ScaledObject")
    # KEDA makes an HPA of its own for a ScaledObject; two would fight over the replicas.
    assert len(hpas) + len(scaled_objects) <= 1
    for hpa in hpas:
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": WORKER,
        }
        assert hpa["spec"]["minReplicas"] >= 1

    autoscaled = bool(hpas or scaled_objects)
    worker = _named(overlay, "Deployment", WORKER)
    # A replicas field would reset the autoscaler's choice on every apply.
    assert ("replicas" in worker["spec"]) != autoscaled

    exporter = _named(overlay, "Deployment", EXPORTER)
    assert exporter["spec"]["replicas"] == 1, "queue gauges must be reported once"
    assert exporter["spec"]["strategy"]["type"] == "Recreate", "never two during a rollout"


# --- pods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("deployment", [WORKER, EXPORTER])
def test_probes_use_the_metrics_port(overlay: list[Resource], deployment: str) -> None:
    pod = _named(overlay, "Deployment", deployment)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = _env(container, overlay)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[METRICS_PORT_NAME] == int(env["ORCHESTRATOR_METRICS_PORT"])

    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        assert container[probe]["httpGet"] == {"path": path, "port": METRICS_PORT_NAME}, probe


def _shared_settings(kubectl: str, kustomization: str) -> dict[str, dict[str, Any]]:
    """Each orchestrator container's Redis and namespace settings, by container."""
    resources = list(_render(kubectl, kustomization))
    settings = {}
    for owner in _pod_owners(resources):
        for container in _containers(owner):
            if _runs_orchestrator(container):
                env = _env(container, resources)
                where = f"{kustomization}: {_label(owner)} container {container['name']!r}"
                settings[where] = {name: env.get(name) for name in SHARED_SETTINGS}
    return settings


def test_every_process_uses_the_same_redis_and_namespace(kubectl: str) -> None:
    # The starter Job sets these itself (it cannot see the generated ConfigMap's name); this
    # keeps it in step with the ConfigMap, in the dev overlay and applied on its own.
    settings = {}
    for name in KUSTOMIZATIONS:
        settings |= _shared_settings(kubectl, name)
    worker = settings[f"base: Deployment {WORKER!r} container 'worker'"]
    differing = {where: s for where, s in settings.items() if s != worker}
    assert not differing, f"the worker has {worker}, but:\n" + "\n".join(
        f"{where}: {s}" for where, s in differing.items()
    )


def test_worker_is_given_time_to_drain(overlay: list[Resource]) -> None:
    spec = _named(overlay, "Deployment", WORKER)["spec"]["template"]["spec"]
    drain = float(
        _env(_worker_container(overlay), overlay)["ORCHESTRATOR_GRACEFUL_SHUTDOWN_TIMEOUT"]
    )
    # Killed before the drain ends, a worker leaves its unfinished attempts to time out
    # instead of reporting them for an immediate retry.
    assert spec["terminationGracePeriodSeconds"] > drain + SHUTDOWN_OVERHEAD_SECONDS


def _container_problems(container: Resource, pod_security: Resource) -> Iterator[str]:
    """What the container lacks of the "restricted" Pod Security Standard, and limits."""
    security = container.get("securityContext", {})
    effective = {**pod_security, **security}  # a container's own settings win
    if effective.get("runAsNonRoot") is not True:
        yield "runAsNonRoot is not true"
    if effective.get("runAsUser") in (None, 0):
        yield "no non-zero runAsUser"
    if security.get("allowPrivilegeEscalation") is not False:
        yield "allowPrivilegeEscalation is not false"
    if security.get("readOnlyRootFilesystem") is not True:
        yield "the root filesystem is writable"
    if "ALL" not in security.get("capabilities", {}).get("drop", []):
        yield "does not drop ALL capabilities"
    if effective.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        yield "no RuntimeDefault seccomp profile"
    resources = container.get("resources", {})
    if "memory" not in resources.get("limits", {}) or not resources.get("requests"):
        yield "no requests or no memory limit"


def test_pods_are_hardened(rendered: list[Resource]) -> None:
    errors = []
    for owner in _pod_owners(rendered):
        pod = owner["spec"]["template"]["spec"]
        if pod.get("automountServiceAccountToken") is not False:
            errors.append(f"{_label(owner)}: mounts a service account token")
        if pod.get("enableServiceLinks") is not False:
            # The Service orchestrator-metrics would set ORCHESTRATOR_METRICS_PORT=tcp://...
            errors.append(f"{_label(owner)}: service links are on")
        for container in _containers(owner):
            errors.extend(
                f"{_label(owner)} container {container['name']!r}: {problem}"
                for problem in _container_problems(container, pod.get("securityContext", {}))
            )
    assert not errors, "\n".join(errors)


def test_secret_references_name_the_redis_secret(rendered: list[Resource]) -> None:
    for owner in _pod_owners(rendered):
        for container in _containers(owner):
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert (ref["name"], ref["key"]) == REDIS_SECRET, _label(owner)

    for secret in _of_kind(rendered, "Secret"):
        # Generated, it must keep its plain name: KEDA's TriggerAuthentication names it and
        # kustomize does not rewrite references it does not know of.
        assert secret["metadata"]["name"] == REDIS_SECRET[0]
        assert REDIS_SECRET[1] in secret.get("data", {})


def test_podmonitor_scrapes_workers_and_exporter(overlay: list[Resource]) -> None:
    for monitor in _of_kind(overlay, "PodMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        assert "matchExpressions" not in monitor["spec"]["selector"]

        selected = {}
        for owner in _pod_owners(overlay):
            labels = owner["spec"]["template"]["metadata"]["labels"]
            if wanted.items() <= labels.items():
                selected[owner["metadata"]["name"]] = owner
        assert {WORKER, EXPORTER} <= set(selected), f"selects only {sorted(selected)}"
        assert "redis" not in selected

        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["path"] == "/metrics"
            # Else Prometheus renames our `namespace` label to exported_namespace.
            assert endpoint.get("honorLabels") is True
            for name in (WORKER, EXPORTER):
                ports = {p.get("name") for c in _containers(selected[name]) for p in c["ports"]}
                assert endpoint["port"] in ports, f"{name} has no port {endpoint['port']!r}"


# --- the command line and the image -------------------------------------------------------


def _parse_cli(args: list[str]) -> None:
    """Parse ``orchestrator ARGS`` as the command would, without running anything.

    Raises the command line's usage error (unknown command or option, bad value, missing
    argument); Typer bundles its own click, so the error's type is not importable here.
    """
    command = typer.main.get_command(cli_app)
    name, ctx = "orchestrator", None
    while hasattr(command, "get_command"):  # a group: the next word names a subcommand
        assert args, f"{name} needs a subcommand"
        ctx = command.make_context(name, args[:1], parent=ctx)
        name, args = args[0], args[1:]
        command = command.get_command(ctx, name)
        assert command is not None, f"no command {name!r}"
    command.make_context(name, list(args), parent=ctx)


def test_container_arguments_are_valid_commands(
    rendered: list[Resource], monkeypatch: pytest.MonkeyPatch
) -> None:
    for owner in _pod_owners(rendered):
        for container in _containers(owner):
            if not _runs_orchestrator(container):
                continue
            # Options also read their defaults from the environment: give them the pod's.
            for name in [name for name in os.environ if name.startswith("ORCHESTRATOR_")]:
                monkeypatch.delenv(name)
            for name, value in _env(container, rendered).items():
                monkeypatch.setenv(name, value if isinstance(value, str) else "from-a-secret")
            try:
                _parse_cli(container["args"])
            except Exception as exc:
                pytest.fail(f"{_label(owner)}: orchestrator {' '.join(container['args'])}: {exc}")


def _final_stage(dockerfile: str) -> list[tuple[str, str]]:
    """The instructions of the Dockerfile's last stage, as (INSTRUCTION, arguments)."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _image_user() -> int:
    stage = _final_stage(DOCKERFILE.read_text())
    users = [rest for word, rest in stage if word == "USER"]
    assert users, "the final stage has no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit(), f"USER {user}: only a numeric one lets runAsNonRoot check it"
    return int(user)


def test_image_runs_as_a_non_root_user() -> None:
    assert _image_user() != 0


def test_manifests_fit_the_image(rendered: list[Resource]) -> None:
    stage = _final_stage(DOCKERFILE.read_text())
    assert ("ENTRYPOINT", '["orchestrator"]') in stage, "the containers' args are its verbs"
    exposed = {
        int(port.split("/")[0]) for word, rest in stage if word == "EXPOSE" for port in rest.split()
    }
    user = _image_user()

    for owner in _pod_owners(rendered):
        for container in _containers(owner):
            if not _runs_orchestrator(container):
                continue
            # The user the image was built for, and the one its files were laid out for.
            assert container["securityContext"]["runAsUser"] == user, _label(owner)
            for port in container.get("ports", []):
                assert port["containerPort"] in exposed, f"{_label(owner)}: port not EXPOSEd"
