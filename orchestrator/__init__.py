"""Durable workflows in plain async Python, with Redis as the only server."""

from . import activity, workflow
from .client import Client, WorkflowDescription, WorkflowHandle
from .commands import ActivityCancellationType
from .errors import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    ConfigurationError,
    Failure,
    NonDeterminismError,
    OrchestratorError,
    QueryError,
    RedisUnavailableError,
    ScheduleAlreadyExistsError,
    ScheduleNotFoundError,
    SerializationError,
    WorkflowAlreadyStartedError,
    WorkflowFailureError,
    WorkflowNotFoundError,
    WorkflowNotRunningError,
    WorkflowResultTimeoutError,
    WorkflowTaskError,
)
from .retry import RetryPolicy
from .schedules import ScheduleAction, ScheduleDescription, ScheduleSpec
from .worker import Worker

__all__ = [
    "ActivityCancellationType",
    "ActivityError",
    "ApplicationError",
    "ChildWorkflowError",
    "Client",
    "ConfigurationError",
    "Failure",
    "NonDeterminismError",
    "OrchestratorError",
    "QueryError",
    "RedisUnavailableError",
    "RetryPolicy",
    "ScheduleAction",
    "ScheduleAlreadyExistsError",
    "ScheduleDescription",
    "ScheduleNotFoundError",
    "ScheduleSpec",
    "SerializationError",
    "Worker",
    "WorkflowAlreadyStartedError",
    "WorkflowDescription",
    "WorkflowFailureError",
    "WorkflowHandle",
    "WorkflowNotFoundError",
    "WorkflowNotRunningError",
    "WorkflowResultTimeoutError",
    "WorkflowTaskError",
    "activity",
    "workflow",
]
