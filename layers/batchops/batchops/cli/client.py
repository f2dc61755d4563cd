"""A client of the jobs API over HTTP, for `batchops jobs ...` and the demo."""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from lxml import etree

from batchops.api.xml_safe import UnsafeXmlError, parse_untrusted
from batchops.cos_signature import authorization_for

RESPONSE_LIMIT = 16 * 1024 * 1024  # a ListJobs page of 1,000 jobs is well under this


@dataclass(frozen=True)
class ApiReply:
    status: int
    body: bytes

    @property
    def root(self) -> etree._Element:
        return parse_untrusted(self.body, max_bytes=RESPONSE_LIMIT)


class ApiCallError(Exception):
    """The service answered with a COS <Error>."""

    def __init__(
        self, status: int, code: str, message: str, *, resource: str, request_id: str, body: bytes
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.resource = resource
        self.request_id = request_id
        self.body = body


class ServiceUnreachableError(Exception):
    """Nothing answered at the endpoint."""


class JobsClient:
    def __init__(
        self, endpoint: str, appid: str, timeout: float = 30.0, credentials: tuple[str, str] | None = None
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.appid = appid
        self.timeout = timeout
        self.credentials = credentials
        """(secret id, secret key) to sign requests with (COS q-sign-algorithm=sha1), if any."""

    def create_job(self, request_xml: bytes) -> ApiReply:
        md5 = base64.b64encode(hashlib.md5(request_xml).digest()).decode()  # noqa: S324 - protocol digest
        return self._call("POST", "/jobs", body=request_xml, headers={"Content-MD5": md5})

    def describe_job(self, job_id: str) -> ApiReply:
        return self._call("GET", f"/jobs/{quote(job_id, safe='')}")

    def list_jobs(
        self, statuses: list[str] | None = None, max_results: int | None = None, next_token: str | None = None
    ) -> ApiReply:
        query: list[tuple[str, str]] = [("jobStatuses", s) for s in statuses or []]
        if max_results is not None:
            query.append(("maxResults", str(max_results)))
        if next_token:
            query.append(("nextToken", next_token))
        return self._call("GET", "/jobs", query=query)

    def update_priority(self, job_id: str, priority: int) -> ApiReply:
        return self._call(
            "POST", f"/jobs/{quote(job_id, safe='')}/priority", query=[("priority", str(priority))]
        )

    def update_status(self, job_id: str, requested: str, reason: str | None = None) -> ApiReply:
        query = [("requestedJobStatus", requested)]
        if reason is not None:
            query.append(("statusUpdateReason", reason))
        return self._call("POST", f"/jobs/{quote(job_id, safe='')}/status", query=query)

    def delete_job(self, job_id: str) -> ApiReply:
        return self._call("DELETE", f"/jobs/{quote(job_id, safe='')}")

    def _call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ApiReply:
        url = self.endpoint + path + (f"?{urlencode(query, quote_via=quote)}" if query else "")
        sent = {"Host": urlsplit(self.endpoint).netloc, "x-cos-appid": self.appid, **(headers or {})}
        if body is not None:
            sent["Content-Type"] = "application/xml"
            sent["Content-Length"] = str(len(body))
        if self.credentials is not None:
            sent["Authorization"] = authorization_for(
                method=method,
                path=urlsplit(url).path,
                # the server checks a repeated parameter's first value, as it reads the parameter
                params=dict(reversed(query or [])),
                headers=sent,
                secret_id=self.credentials[0],
                secret_key=self.credentials[1],
                now=int(time.time()),
            )
        request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - endpoint is the user's
        for name, value in sent.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return ApiReply(status=response.status, body=response.read())
        except urllib.error.HTTPError as exc:
            raise _api_error(exc.code, exc.read()) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServiceUnreachableError(f"cannot reach the jobs API at {self.endpoint}: {exc}") from exc


def _api_error(status: int, body: bytes) -> ApiCallError:
    try:
        root = parse_untrusted(body, max_bytes=RESPONSE_LIMIT)
    except (UnsafeXmlError, ValueError):
        message = body[:200].decode("utf-8", "replace")
        return ApiCallError(status, f"HTTP{status}", message, resource="", request_id="", body=body)
    return ApiCallError(
        status,
        root.findtext("Code") or f"HTTP{status}",
        root.findtext("Message") or "",
        resource=root.findtext("Resource") or "",
        request_id=root.findtext("RequestId") or "",
        body=body,
    )
