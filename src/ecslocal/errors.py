"""AWS-shaped errors: one exception type carries the error code, message and HTTP status."""

from __future__ import annotations


class AwsError(Exception):
    """An error the API layer renders as an AWS error response (``__type`` + ``message``)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def client_exception(message: str) -> AwsError:
    return AwsError("ClientException", message)


def invalid_parameter(message: str) -> AwsError:
    return AwsError("InvalidParameterException", message)


def cluster_not_found(message: str = "Cluster not found.") -> AwsError:
    return AwsError("ClusterNotFoundException", message)


class TaskNotFound(Exception):
    pass


class LocalApiError(Exception):
    """ecslocal's own API (/_ecslocal/v1) refused a client's call: its ``{"message"}`` and
    the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
