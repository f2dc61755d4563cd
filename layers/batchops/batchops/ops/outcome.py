"""What one task's operation came to, in the vocabulary of a completion report row."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

SUCCESSFUL = "Successful"

# S3 error codes that mean "try again later", whatever the HTTP status says.
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
        "ConditionalRequestConflict",
    }
)
_MAX_MESSAGE = 1024


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    succeeded: bool
    http_status: int
    error_code: str
    message: str
    transient: bool = False
    """A failure worth retrying later (throttling, 5xx, timeouts): a TemporaryFailure in S3's terms."""


def success(http_status: int = 200, message: str = SUCCESSFUL) -> TaskOutcome:
    return TaskOutcome(True, http_status, "", message)


def failure(http_status: int, error_code: str, message: str, transient: bool = False) -> TaskOutcome:
    return TaskOutcome(False, http_status, error_code, message[:_MAX_MESSAGE], transient)


def outcome_of_error(exc: Exception) -> TaskOutcome:
    """The failed outcome an exception from botocore stands for."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        code = str(error.get("Code") or status or "Unknown")
        message = str(error.get("Message") or code)
        return failure(status, code, message, transient=code in _TRANSIENT_CODES or status >= 500)
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return failure(0, "RequestTimeout", str(exc), transient=True)
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError):
        return failure(0, "ConnectionError", str(exc), transient=True)
    if isinstance(exc, BotoCoreError):
        return failure(0, type(exc).__name__, str(exc), transient=False)
    raise exc
