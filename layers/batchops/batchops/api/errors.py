"""The COS error catalogue: every error the API answers with, and its HTTP status.

Codes and statuses follow COS (reference/batch-operations.md §1.5); where the seed page and another
COS page disagree, the seed wins (priority out of range is InvalidRequest).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_ARGUMENT = "InvalidArgument"
    INVALID_REQUEST = "InvalidRequest"
    MALFORMED_XML = "MalformedXML"
    INVALID_DIGEST = "InvalidDigest"
    ENTITY_TOO_LARGE = "EntityTooLarge"
    MISSING_CONTENT_LENGTH = "MissingContentLength"
    NO_SUCH_JOB = "NoSuchJob"
    NO_SUCH_RESOURCE = "NoSuchResource"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    INTERNAL_ERROR = "InternalError"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    TOO_MANY_JOBS = "TooManyJobs"
    SLOW_DOWN = "SlowDown"
    ACCESS_DENIED = "AccessDenied"
    INVALID_ACCESS_KEY_ID = "InvalidAccessKeyId"
    SIGNATURE_DOES_NOT_MATCH = "SignatureDoesNotMatch"
    REQUEST_TIME_TOO_SKEWED = "RequestTimeTooSkewed"
    REQUEST_TIMEOUT = "RequestTimeout"
    INCOMPLETE_BODY = "IncompleteBody"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.MALFORMED_XML: 400,
    ErrorCode.INVALID_DIGEST: 400,
    ErrorCode.ENTITY_TOO_LARGE: 400,
    ErrorCode.MISSING_CONTENT_LENGTH: 411,
    ErrorCode.NO_SUCH_JOB: 404,
    ErrorCode.NO_SUCH_RESOURCE: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 500,
    ErrorCode.TOO_MANY_JOBS: 500,
    ErrorCode.SLOW_DOWN: 503,
    ErrorCode.ACCESS_DENIED: 403,
    ErrorCode.INVALID_ACCESS_KEY_ID: 403,
    ErrorCode.SIGNATURE_DOES_NOT_MATCH: 403,
    ErrorCode.REQUEST_TIME_TOO_SKEWED: 403,
    ErrorCode.REQUEST_TIMEOUT: 400,
    ErrorCode.INCOMPLETE_BODY: 400,
}

# The seed's messages, word for word, where it gives one.
DUPLICATE_REQUEST = "Duplicate request."
PRIORITY_RANGE = "Priority must be an integer between 0 and 2147483647."
MALFORMED_SUBTREE = "The XML {field} field in the request body does not conform to the XML syntax"
MALFORMED_BODY = "The XML you provided was not well-formed or did not validate against our published schema"
SERVICE_UNAVAILABLE = "The service is temporarily unavailable, unable to create a job."
TOO_MANY_JOBS = "The number of jobs has reached the upper limit, making the server unavailable."


class ApiError(Exception):
    """An error answered to the client as a COS <Error> body."""

    def __init__(self, code: ErrorCode, message: str, resource: str | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.resource = resource

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


def malformed(field: str, detail: str) -> ApiError:
    """MalformedXML naming the subtree (Manifest, Operation, Report) and what is wrong in it."""
    return ApiError(ErrorCode.MALFORMED_XML, f"{MALFORMED_SUBTREE.format(field=field)}: {detail}")


def invalid_argument(detail: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_ARGUMENT, detail)
