"""Finding the user's workflows and activities from a ``worker run`` or ``replay`` argument.

The argument names a module, ``MODULE`` or a file ``path/to/file.py``, optionally
followed by ``:ATTRIBUTE``:

- no attribute: every function of the module decorated with ``workflow.defn`` or
  ``activity.defn`` (its own, or imported into it);
- a dict of ``Worker`` options (``workflows``, ``activities``, ``task_queue``,
  ``max_concurrent_activities``, ...), or a function returning one;
- a list of decorated functions, or one decorated function.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ConfigurationError
from ..worker import Worker

# The Worker keyword arguments a worker-options dict may hold.
WORKER_OPTIONS = tuple(
    name for name in inspect.signature(Worker.__init__).parameters if name not in ("self", "client")
)


def load(spec: str) -> Any:
    """The module, or the module's attribute, that ``spec`` names."""
    target, _, attribute = spec.partition(":")
    if not target:
        raise ConfigurationError(f"expected MODULE or MODULE:ATTRIBUTE, got {spec!r}")
    module = _import_file(Path(target)) if target.endswith(".py") else _import_module(target)
    if not attribute:
        return module
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ConfigurationError(f"{target!r} has no attribute {attribute!r}") from None
    return value


def _import_module(name: str) -> ModuleType:
    # Like `python -m`, look in the current directory first.
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {name!r}: {exc}") from exc
    except Exception as exc:
        raise ConfigurationError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from exc


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ConfigurationError(f"no such file: {path}")
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"cannot import {path}")
    # Its neighbours are importable from it, as when it is run as a script.
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigurationError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def is_workflow(value: Any) -> bool:
    return callable(value) and hasattr(value, "__workflow_definition__")


def is_activity(value: Any) -> bool:
    return callable(value) and hasattr(value, "__activity_definition__")


def worker_options(target: Any, spec: str) -> dict[str, Any]:
    """The ``Worker`` keyword arguments ``target`` (what ``spec`` named) stands for."""
    if isinstance(target, ModuleType):
        options = _collect(list(vars(target).values()))
        if not options["workflows"] and not options["activities"]:
            raise ConfigurationError(
                f"{spec} has no functions decorated with workflow.defn or activity.defn"
            )
        return options
    if is_workflow(target) or is_activity(target):
        return _collect([target])
    if isinstance(target, list | tuple):
        return _collect(list(target), strict=spec)
    if callable(target) and not isinstance(target, type):
        target = _call(target, spec)
    if isinstance(target, Mapping):
        return _checked_options(target, spec)
    raise ConfigurationError(
        f"{spec} is a {type(target).__name__}: expected a dict of Worker options, a function "
        "returning one, a list of workflow and activity functions, or a module"
    )


def workflows_of(target: Any, spec: str) -> list[Callable[..., Any]]:
    """The workflow functions among what ``spec`` names."""
    workflows = list(worker_options(target, spec).get("workflows", []))
    if not workflows:
        raise ConfigurationError(f"{spec} names no workflows")
    return workflows


def _collect(values: list[Any], strict: str = "") -> dict[str, Any]:
    workflows: dict[int, Any] = {}
    activities: dict[int, Any] = {}
    for value in values:
        if is_workflow(value):
            workflows[id(value)] = value
        elif is_activity(value):
            activities[id(value)] = value
        elif strict:
            raise ConfigurationError(
                f"{value!r} in {strict} is neither a workflow.defn nor an activity.defn function"
            )
    return {"workflows": list(workflows.values()), "activities": list(activities.values())}


def _call(factory: Callable[[], Any], spec: str) -> Any:
    try:
        inspect.signature(factory).bind()
    except (TypeError, ValueError):
        raise ConfigurationError(f"{spec} cannot be called without arguments") from None
    return factory()


def _checked_options(options: Mapping[str, Any], spec: str) -> dict[str, Any]:
    unknown = sorted(set(options) - set(WORKER_OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"{spec} has unknown Worker option(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(WORKER_OPTIONS)}"
        )
    return dict(options)
