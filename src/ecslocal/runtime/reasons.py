"""The words ECS uses for why things stopped (task ``stoppedReason`` / ``stopCode`` and
container ``reason``), kept in one place."""

ESSENTIAL_EXITED = "Essential container in task exited"
ESSENTIAL_EXITED_CODE = "EssentialContainerExited"
USER_INITIATED_CODE = "UserInitiated"
TASK_FAILED_TO_START_CODE = "TaskFailedToStart"
TASK_STOPPED_BY_USER = "Task stopped by user"
OUT_OF_MEMORY = "OutOfMemoryError: Container killed due to memory usage"
DAEMON_RESTARTED = (
    "Task stopped because the ecslocal daemon that ran it exited; its containers are gone"
)
DAEMON_SHUTDOWN = "Task stopped because the ecslocal daemon is shutting down"


def dependency_failed(dependency: str, target: str) -> str:
    """Container reason when a SUCCESS dependency exited non-zero (the agent's wording)."""
    return (
        "DependencyConditionError: dependency graph: failed to resolve container ordering"
        f" dependency [{dependency}] for target [{target}] as dependency did not exit"
        " successfully."
    )


def dependency_timed_out(dependency: str, target: str) -> str:
    return (
        "DependencyConditionError: dependency graph: failed to resolve the container ordering"
        f" dependency [{dependency}] for target [{target}] as the dependency has timed out."
    )


def dependency_never_starts(dependency: str, target: str) -> str:
    return (
        "DependencyConditionError: dependency graph: failed to resolve the container ordering"
        f" dependency [{dependency}] for target [{target}] because dependency will never start."
    )
