"""The one exception tree of the orchestrator.

Every error the library raises on purpose derives from :class:`OrchestratorError`,
so callers can catch the whole family with one clause. Failures that travel
through Redis (an activity that raised, a workflow that failed) are carried as
:class:`Failure` values and turned back into exceptions where they are awaited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure as stored in history: JSON-safe, language-neutral."""

    type: str
    message: str
    stack: str = ""
    attempt: int = 0
    non_retryable: bool = False
    details: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "stack": self.stack,
            "attempt": self.attempt,
            "non_retryable": self.non_retryable,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        return cls(
            type=str(data.get("type", "Error")),
            message=str(data.get("message", "")),
            stack=str(data.get("stack", "")),
            attempt=int(data.get("attempt", 0)),
            non_retryable=bool(data.get("non_retryable", False)),
            details=list(data.get("details") or []),
        )


class OrchestratorError(Exception):
    """Root of every error raised by the orchestrator."""


class ConfigurationError(OrchestratorError):
    """Raised when an argument, option or setting is invalid."""


class SerializationError(OrchestratorError):
    """Raised when a value cannot be converted to or from JSON."""


class RedisUnavailableError(OrchestratorError):
    """Raised when Redis cannot be reached or refuses our credentials."""


class NamespaceMismatchError(ConfigurationError):
    """Raised when a process is configured with a different shard count than its namespace."""


class WorkflowAlreadyStartedError(OrchestratorError):
    """Raised when starting a workflow id that is running, or whose reuse policy forbids it."""

    def __init__(self, workflow_id: str, run_id: str, reason: str = "") -> None:
        detail = reason or f"run {run_id} is still running"
        super().__init__(f"workflow {workflow_id!r} is already started: {detail}")
        self.workflow_id = workflow_id
        self.run_id = run_id


class WorkflowResultTimeoutError(OrchestratorError, TimeoutError):
    """Raised by a handle's ``result(timeout=...)`` when the run is still open at the deadline."""


class WorkflowNotRunningError(OrchestratorError):
    """Raised when signalling or terminating a run that has already closed."""


class WorkflowNotFoundError(OrchestratorError):
    """Raised when a workflow id (or run id) does not exist in the namespace."""


class ScheduleNotFoundError(OrchestratorError):
    """Raised when a schedule id does not exist in the namespace."""


class ScheduleAlreadyExistsError(OrchestratorError):
    """Raised when creating a schedule whose id is already taken in the namespace."""


class WorkflowFailureError(OrchestratorError):
    """Raised by a handle's ``result()`` when the workflow run did not complete."""

    def __init__(self, workflow_id: str, status: str, failure: Failure | None) -> None:
        reason = f": {failure.type}: {failure.message}" if failure else ""
        super().__init__(f"workflow {workflow_id!r} {status.lower()}{reason}")
        self.workflow_id = workflow_id
        self.status = status
        self.failure = failure


class QueryError(OrchestratorError):
    """Raised when a query cannot be answered: no worker replied in time, or its handler failed."""


class ApplicationError(OrchestratorError):
    """Raised by user code to fail an activity or workflow with a chosen type.

    ``non_retryable=True`` stops activity retries whatever the retry policy says.
    """

    def __init__(
        self,
        message: str,
        *details: Any,
        type: str | None = None,
        non_retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)
        self.type = type or self.__class__.__name__
        self.non_retryable = non_retryable


class ActivityError(OrchestratorError):
    """Raised inside a workflow when an activity it awaited failed or timed out for good."""

    def __init__(self, activity_type: str, seq: int, failure: Failure) -> None:
        attempts = f" after {failure.attempt} attempt(s)" if failure.attempt else ""
        super().__init__(
            f"activity {activity_type} (seq {seq}) failed{attempts}: "
            f"{failure.type}: {failure.message}"
        )
        self.activity_type = activity_type
        self.seq = seq
        self.failure = failure

    @property
    def type(self) -> str:
        """The failure type: the exception class name, or ``TimeoutError`` for timeouts."""
        return self.failure.type


class ContinueAsNewError(BaseException):
    """Raised by ``workflow.continue_as_new`` to end the run and start the next one.

    A BaseException, so that an ``except Exception`` in workflow code lets it through.
    """

    def __init__(self, args: list[Any]) -> None:
        super().__init__("continue as new")
        self.input = args


class ChildWorkflowError(OrchestratorError):
    """Raised inside a workflow when a child workflow it awaited did not complete."""

    def __init__(
        self, workflow_type: str, workflow_id: str, status: str, failure: Failure | None
    ) -> None:
        reason = f": {failure.type}: {failure.message}" if failure else ""
        super().__init__(
            f"child workflow {workflow_type} ({workflow_id!r}) {status.lower()}{reason}"
        )
        self.workflow_type = workflow_type
        self.workflow_id = workflow_id
        self.status = status
        self.failure = failure


class NonDeterminismError(OrchestratorError):
    """Raised when replayed workflow code issues commands that differ from its history."""


class WorkflowTaskError(OrchestratorError):
    """Raised when a workflow task cannot run (unknown workflow type, internal error)."""


class StaleTaskError(OrchestratorError):
    """Raised when a result is reported for a task attempt that is no longer current."""
