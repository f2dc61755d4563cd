"""COS request signatures checked by the jobs API when credentials are configured.

Follows the client's ``q-header-list`` (SDKs sign different headers) but requires ``host`` and
``x-cos-appid`` to be signed, and ``content-md5`` whenever there is a body (whose MD5 the API
checks), so nothing a job depends on travels unsigned. ``q-url-param-list`` must name exactly
the parameters present, so none can be added. Answers as COS does: InvalidAccessKeyId,
SignatureDoesNotMatch, AccessDenied (expired, or something required unsigned) and
RequestTimeTooSkewed (not valid yet), all 403. Reference: reliability-security.md §2.3.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote

from batchops.api.errors import ApiError, ErrorCode
from batchops.cos_signature import SignatureFormatError, expected_signature, parse_authorization

SKEW_SECONDS = 60
MAX_VALIDITY_SECONDS = 7 * 24 * 3600


class SignatureVerifier:
    def __init__(self, secrets: Mapping[str, str], clock: Callable[[], float] = time.time) -> None:
        self._secrets = dict(secrets)
        self._clock = clock

    def verify(
        self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> str:
        """Check a request's signature; return the access key that signed it. Raises ApiError."""
        value = headers.get("authorization")
        if not value:
            raise ApiError(
                ErrorCode.ACCESS_DENIED, "Requests to this service must be signed (q-sign-algorithm=sha1)."
            )
        try:
            auth = parse_authorization(value)
        except SignatureFormatError as exc:
            raise ApiError(ErrorCode.ACCESS_DENIED, f"The Authorization header is malformed: {exc}") from exc
        secret = self._secrets.get(auth.access_key)
        if secret is None:
            raise ApiError(ErrorCode.INVALID_ACCESS_KEY_ID, "The access key id you provided does not exist.")
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
        return auth.access_key

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
