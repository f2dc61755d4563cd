"""The jobs API as one function from request to response, shared by Lambda and `batchops serve`.

Routes (COS paths): ``POST /jobs`` CreateJob, ``GET /jobs`` ListJobs, ``GET /jobs/<id>``
DescribeJob, ``DELETE /jobs/<id>`` DeleteJob, ``POST /jobs/<id>/priority`` UpdateJobPriority,
``POST /jobs/<id>/status`` UpdateJobStatus. Every answer carries a fresh request id; every
failure, including a bug, is a COS ``<Error>`` body, never a stack trace.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from batchops.api import render
from batchops.api.auth import Principal, SignatureVerifier, authorize_job
from batchops.api.create_job import parse_create_job, parse_priority, printable_xml_text
from batchops.api.errors import (
    DUPLICATE_REQUEST,
    SERVICE_UNAVAILABLE,
    TOO_MANY_JOBS,
    ApiError,
    ErrorCode,
    invalid_argument,
)
from batchops.api.xml_safe import MAX_BODY_BYTES
from batchops.jobs.errors import (
    DuplicateRequestError,
    InvalidNextTokenError,
    JobError,
    JobStateError,
    JobStoreUnavailableError,
    NoSuchJobError,
    TooManyJobsError,
)
from batchops.jobs.service import JobService
from batchops.jobs.status import JobStatus, RequestedJobStatus

log = logging.getLogger(__name__)

APPID_HEADER = "x-cos-appid"
REQUEST_ID_HEADER = "x-cos-request-id"
TRACE_ID_HEADER = "x-cos-trace-id"
MAX_LIST_RESULTS = 1000
_APPID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_JOB_PATH = re.compile(r"^/jobs/(?P<job_id>[^/]+)(?P<action>/priority|/status)?$")
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A client's trace id is echoed only if it is one plain token (it goes back in a response header).
_TRACE_ID = re.compile(r"[A-Za-z0-9+/=._:-]{1,256}")


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    """The percent-decoded path, without the query string."""
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    """Header names in lower case."""
    body: bytes = b""


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: bytes
    headers: dict[str, str]
    error_code: str | None = None


def new_request_id() -> str:
    return base64.b64encode(secrets.token_bytes(18)).decode()


class JobsApi:
    def __init__(
        self,
        service: JobService,
        request_ids: Callable[[], str] = new_request_id,
        verifier: SignatureVerifier | None = None,
    ) -> None:
        self._service = service
        self._request_ids = request_ids
        # With credentials configured every request must carry a valid COS signature.
        self._verifier = verifier

    def handle(self, request: ApiRequest) -> ApiResponse:
        headers = self._headers(request)
        try:
            principal = None
            if self._verifier is not None:
                principal = self._verifier.verify(
                    request.method, request.path, request.query, request.headers, request.body
                )
            status, body = self._route(request, principal)
        except ApiError as exc:
            return self._error(exc, request, headers)
        except JobError as exc:
            return self._error(_api_error(exc), request, headers)
        except Exception:  # the client gets a COS error, the log gets the traceback
            log.exception("unhandled error serving %s %r", request.method, request.path)
            error = ApiError(ErrorCode.INTERNAL_ERROR, "We encountered an internal error. Please try again.")
            return self._error(error, request, headers)
        return ApiResponse(status=status, body=body, headers=headers)

    def refuse(self, request: ApiRequest, error: ApiError) -> ApiResponse:
        """Answer with ``error`` without routing: for transports that refuse a request early."""
        return self._error(error, request, self._headers(request))

    def _headers(self, request: ApiRequest) -> dict[str, str]:
        trace_id = request.headers.get(TRACE_ID_HEADER, "")
        return {
            "Content-Type": "application/xml",
            REQUEST_ID_HEADER: self._request_ids(),
            TRACE_ID_HEADER: trace_id if _TRACE_ID.fullmatch(trace_id) else secrets.token_hex(16),
        }

    def _route(self, request: ApiRequest, principal: Principal | None = None) -> tuple[int, bytes]:
        path = request.path.rstrip("/") or "/"
        if path == "/jobs":
            if request.method == "POST":
                return 200, self._create(request, principal)
            if request.method == "GET":
                return 200, self._list(request)
            raise _method_not_allowed(request, "GET, POST")
        if path.startswith("/jobs//"):
            raise ApiError(ErrorCode.INVALID_REQUEST, "The job ID is missing from the path.")
        match = _JOB_PATH.match(path)
        if match is None:
            raise ApiError(
                ErrorCode.NO_SUCH_RESOURCE, f"No API at {request.path}; the jobs API lives under /jobs."
            )
        job_id, action = match["job_id"], match["action"]
        if action is None and request.method == "GET":
            return 200, self._describe(request, job_id)
        if action is None and request.method == "DELETE":
            self._delete(request, job_id)
            return 204, b""
        if action == "/priority" and request.method == "POST":
            return 200, self._update_priority(request, job_id)
        if action == "/status" and request.method == "POST":
            return 200, self._update_status(request, job_id)
        raise _method_not_allowed(request, "GET, DELETE" if action is None else "POST")

    def _create(self, request: ApiRequest, principal: Principal | None) -> bytes:
        appid = _appid(request)
        _check_body(request)
        spec = parse_create_job(request.body)
        if principal is not None:
            authorize_job(principal, spec)
        job = self._service.create(appid, spec)
        log.info("created job %s for appid %s (token %r)", job.job_id, appid, spec.client_request_token)
        return render.create_job_result(job.job_id)

    def _describe(self, request: ApiRequest, job_id: str) -> bytes:
        return render.describe_job_result(self._service.describe(_appid(request), _job_id(job_id)))

    def _list(self, request: ApiRequest) -> bytes:
        appid = _appid(request)
        statuses = _list_statuses(request.query.get("jobStatuses", []))
        max_results = _single(request, "maxResults")
        if max_results is None:
            limit = MAX_LIST_RESULTS
        elif re.fullmatch(r"[0-9]{1,4}", max_results) and 1 <= int(max_results) <= MAX_LIST_RESULTS:
            limit = int(max_results)
        else:
            raise invalid_argument(
                f"maxResults must be an integer from 1 to {MAX_LIST_RESULTS}, not {max_results!r}."
            )
        next_token = _single(request, "nextToken")
        if next_token is not None and not 1 <= len(next_token.encode()) <= 64:
            raise invalid_argument("nextToken must be 1-64 bytes long.")
        jobs, following = self._service.list(appid, statuses, limit, next_token)
        return render.list_jobs_result(jobs, following)

    def _update_priority(self, request: ApiRequest, job_id: str) -> bytes:
        appid = _appid(request)
        priority = _single(request, "priority")
        if priority is None:
            raise ApiError(ErrorCode.INVALID_REQUEST, "The priority query parameter is required.")
        job = self._service.update_priority(appid, _job_id(job_id), parse_priority(priority))
        return render.update_job_priority_result(job)

    def _update_status(self, request: ApiRequest, job_id: str) -> bytes:
        appid = _appid(request)
        requested = _single(request, "requestedJobStatus")
        if requested is None:
            raise ApiError(ErrorCode.INVALID_REQUEST, "The requestedJobStatus query parameter is required.")
        try:
            wanted = RequestedJobStatus(requested)
        except ValueError:
            raise invalid_argument(
                f"requestedJobStatus must be Ready or Cancelled, not {requested!r}."
            ) from None
        reason = _single(request, "statusUpdateReason")
        if reason is not None and len(reason.encode()) > 256:
            raise invalid_argument("statusUpdateReason must be at most 256 bytes long.")
        if reason is not None and not printable_xml_text(reason):
            raise invalid_argument("statusUpdateReason must not contain control or non-characters.")
        job = self._service.update_status(appid, _job_id(job_id), wanted, reason)
        return render.update_job_status_result(job)

    def _delete(self, request: ApiRequest, job_id: str) -> None:
        self._service.delete(_appid(request), _job_id(job_id))

    def _error(self, error: ApiError, request: ApiRequest, headers: dict[str, str]) -> ApiResponse:
        if error.http_status >= 500:
            # %r: the path is the client's, percent-decoded, and may hold CR or LF.
            log.warning("%s %r -> %s: %s", request.method, request.path, error.code.value, error.message)
        body = render.error_body(
            code=error.code.value,
            message=error.message,
            resource=error.resource or request.path,
            request_id=headers[REQUEST_ID_HEADER],
            trace_id=headers[TRACE_ID_HEADER],
        )
        return ApiResponse(status=error.http_status, body=body, headers=headers, error_code=error.code.value)


def _api_error(exc: JobError) -> ApiError:  # noqa: PLR0911 - one answer per domain error
    if isinstance(exc, DuplicateRequestError):
        return ApiError(ErrorCode.INVALID_REQUEST, DUPLICATE_REQUEST, resource=f"/jobs/{exc.existing_job_id}")
    if isinstance(exc, NoSuchJobError):
        return ApiError(ErrorCode.NO_SUCH_JOB, str(exc), resource=f"/jobs/{exc.job_id}")
    if isinstance(exc, JobStateError):
        return ApiError(ErrorCode.INVALID_REQUEST, str(exc))
    if isinstance(exc, TooManyJobsError):
        return ApiError(ErrorCode.TOO_MANY_JOBS, f"{TOO_MANY_JOBS} ({exc.limit} active jobs)")
    if isinstance(exc, InvalidNextTokenError):
        return invalid_argument(f"nextToken {exc.token!r} does not name a job of this account.")
    if isinstance(exc, JobStoreUnavailableError):
        return ApiError(ErrorCode.SERVICE_UNAVAILABLE, SERVICE_UNAVAILABLE)
    return ApiError(ErrorCode.INTERNAL_ERROR, "We encountered an internal error. Please try again.")


def _appid(request: ApiRequest) -> str:
    appid = request.headers.get(APPID_HEADER, "")
    if not appid:
        raise invalid_argument("The x-cos-appid header is required.")
    if not _APPID.fullmatch(appid):
        raise invalid_argument("The x-cos-appid header must be 1-64 letters, digits, '-' or '_'.")
    return appid


def _job_id(job_id: str) -> str:
    if not _JOB_ID.fullmatch(job_id):
        raise NoSuchJobError(job_id)
    return job_id


def _single(request: ApiRequest, name: str) -> str | None:
    values = request.query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise invalid_argument(f"The {name} query parameter is given {len(values)} times.")
    return values[0]


def _list_statuses(values: list[str]) -> frozenset[JobStatus] | None:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        return None
    try:
        return frozenset(JobStatus(name) for name in names)
    except ValueError:
        allowed = ", ".join(s.value for s in JobStatus)
        raise invalid_argument(f"jobStatuses must be among {allowed}; got {', '.join(names)!r}.") from None


def _check_body(request: ApiRequest) -> None:
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise ApiError(
            ErrorCode.INVALID_REQUEST, f"Content-Encoding {encoding!r} is not supported; send plain XML."
        )
    if len(request.body) > MAX_BODY_BYTES:
        raise ApiError(
            ErrorCode.ENTITY_TOO_LARGE, f"The request body is larger than the {MAX_BODY_BYTES} bytes allowed."
        )
    content_md5 = request.headers.get("content-md5")
    if content_md5 is not None:
        try:
            claimed = base64.b64decode(content_md5.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                ErrorCode.INVALID_DIGEST, "The Content-MD5 you specified is not valid base64."
            ) from None
        if claimed != hashlib.md5(request.body).digest():  # noqa: S324 - MD5 is the protocol's digest
            raise ApiError(
                ErrorCode.INVALID_DIGEST, "The Content-MD5 you specified did not match what we received."
            )


def _method_not_allowed(request: ApiRequest, allowed: str) -> ApiError:
    return ApiError(
        ErrorCode.METHOD_NOT_ALLOWED, f"{request.method} is not allowed on {request.path}; use {allowed}."
    )
