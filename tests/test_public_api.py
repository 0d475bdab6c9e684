"""The package's public names: a change here is a change to every user's imports."""

import orchestrator

EXPECTED = {
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
}


def test_public_exports_are_pinned() -> None:
    assert set(orchestrator.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(orchestrator, name)


def test_every_error_derives_from_one_root() -> None:
    import inspect

    from orchestrator import errors

    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, Exception) and cls.__module__ == errors.__name__:
            assert issubclass(cls, errors.OrchestratorError), name
