"""AWS Signature Version 4 for S3 requests, byte for byte what botocore's ``S3SigV4Auth`` signs.

botocore builds an email.message-based header map and re-parses the URL for every signature;
this signer works on the plain dict and the path and query the request builder already has.
What must stay identical to botocore (and is proven so by a property test against it): the
path is signed as sent (S3 does not normalise or double-encode it), the query pairs are sorted
as they appear in the URL, header values have their whitespace runs collapsed, the headers
botocore never signs are left out, and ``host`` is derived from the URL as botocore derives it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import MutableMapping
from typing import NamedTuple

from botocore.auth import SIGNED_HEADERS_BLACKLIST

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_UNSIGNED_HEADERS = frozenset(SIGNED_HEADERS_BLACKLIST)


class Credentials(NamedTuple):
    """A frozen set of credentials (botocore's ``ReadOnlyCredentials`` has the same fields)."""

    access_key: str
    secret_key: str
    token: str | None


def canonical_query(query: str) -> str:
    """The canonical query string of an already percent-encoded query, as botocore builds it."""
    if not query:
        return ""
    pairs = []
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        pairs.append((key, value))
    pairs.sort()
    return "&".join(f"{key}={value}" for key, value in pairs)


class SigV4Signer:
    """Signs requests for one region and service; safe to share between threads."""

    def __init__(self, region: str, service: str = "s3") -> None:
        self.region = region
        self.service = service
        # (secret, yyyymmdd) -> signing key: four HMACs saved on every request of the day.
        self._keys: dict[tuple[str, str], bytes] = {}

    def sign(
        self,
        method: str,
        host: str,
        path: str,
        query: str,
        headers: MutableMapping[str, str],
        *,
        payload_hash: str,
        credentials: Credentials,
        timestamp: str,
    ) -> None:
        """Add X-Amz-Date, X-Amz-Security-Token, X-Amz-Content-SHA256 and Authorization to ``headers``.

        ``path`` and ``query`` are exactly what goes on the request line (percent-encoded);
        ``timestamp`` is ``YYYYMMDDTHHMMSSZ`` in UTC.
        """
        headers["X-Amz-Date"] = timestamp
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        headers["X-Amz-Content-SHA256"] = payload_hash
        signed: dict[str, str] = {}
        for name, value in headers.items():
            lower = name.lower()
            if lower not in _UNSIGNED_HEADERS:
                collapsed = " ".join(value.split())
                # Two spellings of one header are signed as one, comma-joined (as botocore does).
                signed[lower] = f"{signed[lower]},{collapsed}" if lower in signed else collapsed
        if "host" not in signed:
            signed["host"] = host
        names = sorted(signed)
        signed_headers = ";".join(names)
        canonical = "\n".join(
            (
                method,
                path,
                canonical_query(query),
                "".join(f"{name}:{signed[name]}\n" for name in names),
                signed_headers,
                payload_hash,
            )
        )
        date = timestamp[:8]
        scope = f"{date}/{self.region}/{self.service}/aws4_request"
        string_to_sign = (
            f"AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.new(
            self._signing_key(credentials.secret_key, date), string_to_sign.encode(), hashlib.sha256
        ).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        )

    def _signing_key(self, secret: str, date: str) -> bytes:
        cached = self._keys.get((secret, date))
        if cached is not None:
            return cached
        key = _hmac(f"AWS4{secret}".encode(), date)
        for part in (self.region, self.service, "aws4_request"):
            key = _hmac(key, part)
        if len(self._keys) > 16:
            # Old dates and rotated secrets: never more than a handful are live.
            self._keys.clear()
        self._keys[(secret, date)] = key
        return key


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def host_of(scheme: str, hostname: str, port: int | None) -> str:
    """The ``host`` botocore signs: lowercase, the port only when it is not the scheme's default."""
    host = hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    return host
