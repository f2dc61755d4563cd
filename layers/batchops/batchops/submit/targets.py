"""Where a submission goes: the job service in-process (``direct``) or a jobs endpoint over HTTP
(``http``: batchops' own API, or Tencent COS at ``<UIN>.cos-control.<Region>.myqcloud.com``).

Both answer the same thing: the JobId created, or the JobId a previous submission with the same
token created (a duplicate is success: the job exists).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from batchops.api.create_job import parse_create_job
from batchops.api.xml_safe import UnsafeXmlError, parse_untrusted
from batchops.cos_signature import authorization_for
from batchops.jobs.errors import DuplicateRequestError
from batchops.jobs.service import JobService

HTTP_ATTEMPTS = 4
HTTP_BACKOFF_SECONDS = 0.5


@dataclass(frozen=True)
class Submitted:
    job_id: str
    duplicate: bool


class SubmitError(Exception):
    """The target refused the request (a bad rule, a denied signature) or stayed unavailable."""


class Target(Protocol):
    def submit(self, appid: str, request_xml: bytes) -> Submitted: ...


class DirectTarget:
    """The job service on the deployment's own store."""

    def __init__(self, service: JobService) -> None:
        self._service = service

    def submit(self, appid: str, request_xml: bytes) -> Submitted:
        try:
            return Submitted(
                self._service.create(appid, parse_create_job(request_xml)).job_id, duplicate=False
            )
        except DuplicateRequestError as exc:
            return Submitted(exc.existing_job_id, duplicate=True)


@dataclass(frozen=True)
class Credentials:
    secret_id: str
    secret_key: str


class HttpTarget:
    """``POST /jobs`` with ``x-cos-appid``, ``Content-MD5`` and, with credentials, a COS signature."""

    def __init__(self, endpoint: str, credentials: Credentials | None = None, timeout: float = 30.0) -> None:
        split = urlsplit(endpoint)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint!r}")
        self._split = split
        self._credentials = credentials
        self._timeout = timeout

    def submit(self, appid: str, request_xml: bytes) -> Submitted:
        for attempt in range(HTTP_ATTEMPTS):
            status, body = self._post(appid, request_xml)
            if status < 500 and status != 429:
                return self._answer(status, body)
            if attempt + 1 < HTTP_ATTEMPTS:
                time.sleep(HTTP_BACKOFF_SECONDS * 2**attempt)
        raise SubmitError(f"the jobs endpoint kept answering HTTP {status}: {body[:300]!r}")

    def _post(self, appid: str, body: bytes) -> tuple[int, bytes]:
        host = self._split.netloc
        path = (self._split.path.rstrip("/") or "") + "/jobs"
        headers = {
            "Host": host,
            "Content-Type": "application/xml",
            "Content-Length": str(len(body)),
            "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),  # noqa: S324 - protocol digest
            "x-cos-appid": appid,
        }
        if self._credentials is not None:
            headers["Authorization"] = authorization_for(
                method="POST",
                path=path,
                params={},
                headers=headers,
                secret_id=self._credentials.secret_id,
                secret_key=self._credentials.secret_key,
                now=int(time.time()),
            )
        connection_class = (
            http.client.HTTPSConnection if self._split.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(self._split.hostname or "", self._split.port, timeout=self._timeout)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except OSError as exc:
            return 599, str(exc).encode()
        finally:
            connection.close()

    def _answer(self, status: int, body: bytes) -> Submitted:
        try:
            root = parse_untrusted(body, max_bytes=1 << 20)
        except (UnsafeXmlError, ValueError) as exc:
            raise SubmitError(f"HTTP {status} with a body that is not XML: {body[:200]!r}") from exc
        if status == 200 and root.findtext("JobId"):
            return Submitted(root.findtext("JobId") or "", duplicate=False)
        code, message, resource = (
            root.findtext("Code"),
            root.findtext("Message") or "",
            root.findtext("Resource") or "",
        )
        if code == "InvalidRequest" and "Duplicate request" in message:
            # batchops names the job in Resource; COS may not: the job exists either way.
            return Submitted(
                resource.removeprefix("/jobs/") if resource.startswith("/jobs/") else "", duplicate=True
            )
        raise SubmitError(f"HTTP {status} {code}: {message}")
