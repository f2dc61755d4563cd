"""COS request signatures checked by the jobs API when credentials are configured.

Follows the client's ``q-header-list`` (SDKs sign different headers) but requires ``host`` and
``x-cos-appid`` to be signed, and ``content-md5`` whenever there is a body (whose MD5 the API
checks), so nothing a job depends on travels unsigned. ``q-url-param-list`` must name exactly
the parameters present, so none can be added. Answers as COS does: InvalidAccessKeyId,
SignatureDoesNotMatch, AccessDenied (expired, or something required unsigned) and
RequestTimeTooSkewed (not valid yet), all 403; keys whose store does not answer make a 500
ServiceUnavailable, as a job store outage does. Reference: reliability-security.md §2.3.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from batchops.api.errors import ApiError, ErrorCode
from batchops.cos_signature import SignatureFormatError, expected_signature, parse_authorization
from batchops.jobs.model import JobSpec, PutObjectCopy
from batchops.manifest.resources import parse_resource

SKEW_SECONDS = 60
MAX_VALIDITY_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Principal:
    """Who a key belongs to. A key bound to an appid (a tenant) may only act for that appid, on
    buckets of that appid (``<name>-<appid>``, ``uid/<appid>``) or of its allow-list, with roles of
    its own account (``uin``) that its passable-roles list names (when it has one)."""

    key_id: str
    secret: str
    appid: str | None = None
    uin: str | None = None
    roles: frozenset[str] | None = None
    buckets: frozenset[str] = frozenset()

    @property
    def bound(self) -> bool:
        return self.appid is not None


class CredentialsUnavailableError(Exception):
    """The keys cannot be read right now (their store does not answer); the request may be retried."""


class Credentials(Protocol):
    """Where the verifier looks a key id up: a fixed mapping, or a secret read and cached."""

    def principal(self, key_id: str) -> Principal | None:
        """The principal of ``key_id``, None if there is none. May raise CredentialsUnavailableError."""
        ...


class StaticCredentials:
    def __init__(self, keys: Mapping[str, str | Principal]) -> None:
        self._principals = {
            key_id: value if isinstance(value, Principal) else Principal(key_id, value)
            for key_id, value in keys.items()
        }

    def principal(self, key_id: str) -> Principal | None:
        return self._principals.get(key_id)


CREDENTIALS_UNAVAILABLE = "The keys that requests are checked against cannot be read right now; please retry."


class SignatureVerifier:
    def __init__(
        self, keys: Mapping[str, str | Principal] | Credentials, clock: Callable[[], float] = time.time
    ) -> None:
        self._credentials = StaticCredentials(keys) if isinstance(keys, Mapping) else keys
        self._clock = clock

    def verify(
        self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> Principal:
        """Check a request's signature; return the principal whose key signed it. Raises ApiError."""
        value = headers.get("authorization")
        if not value:
            raise ApiError(
                ErrorCode.ACCESS_DENIED, "Requests to this service must be signed (q-sign-algorithm=sha1)."
            )
        try:
            auth = parse_authorization(value)
        except SignatureFormatError as exc:
            raise ApiError(ErrorCode.ACCESS_DENIED, f"The Authorization header is malformed: {exc}") from exc
        try:
            principal = self._credentials.principal(auth.access_key)
        except CredentialsUnavailableError:
            raise ApiError(ErrorCode.SERVICE_UNAVAILABLE, CREDENTIALS_UNAVAILABLE) from None
        if principal is None:
            raise ApiError(ErrorCode.INVALID_ACCESS_KEY_ID, "The access key id you provided does not exist.")
        secret = principal.secret
        self._check_time(auth.sign_time)
        required = {"host", "x-cos-appid"} | ({"content-md5"} if body else set())
        missing = required - set(auth.header_list)
        if missing:
            raise ApiError(
                ErrorCode.ACCESS_DENIED, f"These headers must be signed: {', '.join(sorted(missing))}."
            )
        present = sorted(quote(name.lower(), safe="-_.~") for name in query)
        if list(auth.url_param_list) != present:
            raise ApiError(
                ErrorCode.ACCESS_DENIED, "q-url-param-list must list exactly the query parameters sent."
            )
        try:
            expected = expected_signature(
                method=method,
                path=quote(path, safe="/"),
                params={name: values[0] if values else None for name, values in query.items()},
                headers=headers,
                secret_key=secret,
                key_time=auth.key_time,
                header_list=auth.header_list,
                url_param_list=auth.url_param_list,
            )
        except SignatureFormatError as exc:
            raise ApiError(ErrorCode.ACCESS_DENIED, f"The signature names something not sent: {exc}") from exc
        if not hmac.compare_digest(expected, auth.signature.lower()):
            raise ApiError(
                ErrorCode.SIGNATURE_DOES_NOT_MATCH,
                "The request signature we calculated does not match the signature you provided.",
            )
        if principal.bound and headers.get("x-cos-appid") != principal.appid:
            raise ApiError(ErrorCode.ACCESS_DENIED, "The x-cos-appid you sent is not the appid of your key.")
        return principal

    def _check_time(self, window: tuple[int, int]) -> None:
        start, end = window
        now = self._clock()
        if end - start > MAX_VALIDITY_SECONDS:
            raise ApiError(ErrorCode.ACCESS_DENIED, "The signature is valid for longer than 7 days.")
        if now > end + SKEW_SECONDS:
            raise ApiError(ErrorCode.ACCESS_DENIED, "Request has expired.")
        if now < start - SKEW_SECONDS:
            raise ApiError(
                ErrorCode.REQUEST_TIME_TOO_SKEWED,
                "The difference between the request time and the server's time is too large.",
            )


def authorize_job(principal: Principal, spec: JobSpec) -> None:
    """Refuse, before anything is written, a job that reaches outside the principal's tenancy."""
    if not principal.bound:
        return
    resources = [
        ("Manifest/Location/ObjectArn", spec.manifest.location.object_arn),
        ("Report/Bucket", spec.report.bucket),
    ]
    if isinstance(spec.operation, PutObjectCopy):
        resources.append(("Operation/COSPutObjectCopy/TargetResource", spec.operation.target_resource))
    for field, text in resources:
        if text is None:
            continue
        resource = parse_resource(text)
        owned = resource.appid == principal.appid or resource.bucket.endswith(f"-{principal.appid}")
        if resource.appid not in (None, principal.appid) or not (
            owned or resource.bucket in principal.buckets
        ):
            raise ApiError(
                ErrorCode.ACCESS_DENIED, f"{field}: bucket {resource.bucket} is not one of your appid's."
            )
    account = _role_account(spec.role_arn)
    if principal.uin is not None and account != principal.uin:
        raise ApiError(ErrorCode.ACCESS_DENIED, "RoleArn: the role is not one of your account's.")
    if principal.roles is not None and spec.role_arn not in principal.roles:
        raise ApiError(ErrorCode.ACCESS_DENIED, "RoleArn: your key may not pass this role.")


def _role_account(role_arn: str) -> str | None:
    found = re.match(r"^qcs::cam::uin/([0-9]+):|^arn:[a-z-]+:iam::([0-9]{12}):", role_arn)
    return None if found is None else found.group(1) or found.group(2)
