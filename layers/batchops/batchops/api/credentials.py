"""Where API keys come from: the BATCHOPS_CREDENTIALS JSON, given inline or kept in Secrets Manager.

Both hold one JSON object of access key id to secret key, or to a tenant's key
``{"secret": ..., "appid": ..., "uin": ..., "roles": [...], "buckets": [...]}``.

A secret is read with GetSecretValue and kept for ``max_age`` seconds, so a warm Lambda or a busy
`batchops serve` does not call Secrets Manager per request, while a rotation (a new AWSCURRENT
version) is in force within ``max_age``. A key id the cached copy does not know makes an early
re-read (at most one per ``early_refresh`` seconds, so unknown ids cannot turn every request into
a Secrets Manager call): a key a rotation just added works at once; a key still unknown after that
is InvalidAccessKeyId. When the secret cannot be read (unreachable, denied, not credentials JSON)
requests are refused as retryable rather than checked against stale keys, so a revoked key stops
working at the latest ``max_age`` after its removal whatever Secrets Manager does; a failure is
remembered for ``failure_hold`` seconds so an outage does not pile a call onto every request.

Powertools' parameters utility (``SecretsProvider.get(max_age=...)``) caches the same way, but it
times entries with the wall clock and offers only an unconditional ``force_fetch``; the early
re-read needs its own rate limit, and the cache an injectable clock for exact tests.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from batchops.api.auth import Credentials, CredentialsUnavailableError, Principal, StaticCredentials

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_SECONDS = 300
EARLY_REFRESH_SECONDS = 10.0
FAILURE_HOLD_SECONDS = 2.0
_FIELDS = {"secret", "appid", "uin", "roles", "buckets"}


@dataclass(frozen=True)
class CredentialsSecret:
    """A secret holding the keys: its ARN or name, and how long a read of it stays in force."""

    secret_id: str
    max_age: int = DEFAULT_MAX_AGE_SECONDS


class CredentialsFormatError(ValueError):
    """The credentials JSON is not what batchops reads; the message names where and what."""


def parse_credentials(text: str, source: str) -> dict[str, Principal]:
    """Read the credentials JSON; ``source`` names it in errors (never a secret from it)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CredentialsFormatError(
            f"{source} must be a JSON object of key id to secret key: {exc.msg}"
        ) from None
    if not isinstance(data, dict) or not data:
        raise CredentialsFormatError(f"{source} must be a JSON object of key id to secret key")
    return {str(key_id): _principal(f"{source}[{key_id!r}]", str(key_id), v) for key_id, v in data.items()}


def _principal(where: str, key_id: str, value: object) -> Principal:
    if isinstance(value, str) and value:
        return Principal(key_id, value)
    if not isinstance(value, dict) or not isinstance(value.get("secret"), str) or not value["secret"]:
        raise CredentialsFormatError(f"{where} must be a secret key, or an object with at least a secret")
    unknown = set(value) - _FIELDS
    if unknown:
        raise CredentialsFormatError(f"{where}: {sorted(unknown)[0]!r} is not a credential field")
    for name in ("roles", "buckets"):
        if name in value and not (
            isinstance(value[name], list) and all(isinstance(v, str) for v in value[name])
        ):
            raise CredentialsFormatError(f"{where}.{name} must be a list of strings")
    return Principal(
        key_id,
        value["secret"],
        appid=str(value["appid"]) if value.get("appid") else None,
        uin=str(value["uin"]) if value.get("uin") else None,
        roles=frozenset(value["roles"]) if "roles" in value else None,
        buckets=frozenset(value.get("buckets", [])),
    )


class SecretsManagerCredentials:
    """Keys read from a Secrets Manager secret's SecretString, cached (see the module docstring)."""

    def __init__(
        self,
        client: SecretsManagerClient,
        secret_id: str,
        *,
        max_age: float = DEFAULT_MAX_AGE_SECONDS,
        early_refresh: float = EARLY_REFRESH_SECONDS,
        failure_hold: float = FAILURE_HOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._max_age = max_age
        self._early_refresh = early_refresh
        self._failure_hold = failure_hold
        self._clock = clock
        self._principals: dict[str, Principal] | None = None
        self._read_at = 0.0
        self._failed_at: float | None = None
        # One reader at a time: threads of `batchops serve` arriving together share one read.
        self._lock = threading.Lock()

    def principal(self, key_id: str) -> Principal | None:
        with self._lock:
            now = self._clock()
            if self._principals is None or now - self._read_at >= self._max_age:
                self._principals = self._read(now)
            found = self._principals.get(key_id)
            if found is None and now - self._read_at >= self._early_refresh:
                self._principals = self._read(now)
                found = self._principals.get(key_id)
            return found

    def _read(self, now: float) -> dict[str, Principal]:
        if self._failed_at is not None and now - self._failed_at < self._failure_hold:
            raise CredentialsUnavailableError(f"secret {self._secret_id} failed to read just now")
        try:
            text = self._client.get_secret_value(SecretId=self._secret_id).get("SecretString")
            if text is None:
                raise CredentialsFormatError(f"secret {self._secret_id} has no SecretString")
            principals = parse_credentials(text, f"secret {self._secret_id}")
        except (BotoCoreError, ClientError, CredentialsFormatError) as exc:
            self._failed_at = now
            log.error("API keys unavailable: cannot read secret %s: %s", self._secret_id, exc)
            raise CredentialsUnavailableError(str(exc)) from exc
        self._read_at, self._failed_at = now, None
        return principals


def configured_credentials(
    static: Mapping[str, Principal],
    secret: CredentialsSecret | None,
    secretsmanager: Callable[[], SecretsManagerClient],
) -> Credentials | None:
    """The keys an entry point checks signatures against; None: signatures are not required.

    ``secretsmanager`` builds the client, and is called only when a secret is configured.
    """
    if secret is not None:
        return SecretsManagerCredentials(secretsmanager(), secret.secret_id, max_age=secret.max_age)
    return StaticCredentials(static) if static else None
