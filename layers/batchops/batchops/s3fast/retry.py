"""botocore's "standard" retry mode for lean calls, made of botocore's own retry classes.

The same conditions decide (transient codes and statuses 500/502/503/504, throttling codes,
429s the model does not explain, connection errors), the same backoff waits (full jitter,
1 s base for throttling and 50 ms otherwise, doubling, capped at 20 s, ``x-amz-retry-after``
honoured) and the same retry quota applies (500 tokens: 5 per throttled retry, 14 otherwise,
refunded on success). The quota is the lean client's own, as each botocore client has its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.model import OperationModel
from botocore.retries.quota import RetryQuota
from botocore.retries.standard import (
    DEFAULT_MAX_ATTEMPTS,
    ExponentialBackoff,
    RetryContext,
    RetryEventAdapter,
    RetryQuotaChecker,
    StandardRetryConditions,
    ThrottlingErrorDetector,
)


class HttpStatus:
    """The two things botocore's retry checkers read from an HTTP response."""

    __slots__ = ("headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str]) -> None:
        self.status_code = status_code
        self.headers = headers


def max_attempts_of(client: Any) -> int:
    """Total attempts the wrapped client makes (botocore stores ``max_attempts`` + 1)."""
    attempts = client.meta.config.retries.get("total_max_attempts")
    return int(attempts) if attempts is not None else DEFAULT_MAX_ATTEMPTS


class StandardRetries:
    def __init__(self, max_attempts: int) -> None:
        self.max_attempts = max_attempts
        detector = ThrottlingErrorDetector(RetryEventAdapter())
        self._conditions = StandardRetryConditions(max_attempts=max_attempts)
        self._backoff = ExponentialBackoff(service_name="s3", throttling_detector=detector)
        self._quota = RetryQuotaChecker(RetryQuota(), detector)

    def delay(
        self,
        *,
        attempt: int,
        operation: OperationModel,
        request_context: dict[str, Any],
        status: HttpStatus | None,
        parsed: dict[str, Any] | None,
        exception: Exception | None,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up (botocore's ``needs_retry``).

        As botocore does, the verdict's metadata (MaxAttemptsReached, RetryQuotaReached) is
        added to ``parsed["ResponseMetadata"]``.
        """
        context = RetryContext(
            attempt_number=attempt,
            operation_model=operation,
            parsed_response=parsed,
            http_response=status,
            caught_exception=exception,
            request_context=request_context,
        )
        delay: float | None = None
        if self._conditions.is_retryable(context) and self._quota.acquire_retry_quota(context):
            delay = self._backoff.delay_amount(context)
        if parsed is not None:
            parsed.setdefault("ResponseMetadata", {}).update(context.get_retry_metadata())
        return delay

    def succeeded(self, request_context: dict[str, Any], status: HttpStatus) -> None:
        """botocore's ``after-call`` refund: what the call's last retry took, or one token."""
        self._quota.release_retry_quota(request_context, status)  # type: ignore[arg-type]
