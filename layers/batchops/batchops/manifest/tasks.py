"""What every manifest reader yields, and the one error every manifest failure is reported as.

A job fails in Preparing when its manifest cannot be used; the job's FailureReasons entry is
built from a ``ManifestError``: ``code`` becomes the FailureCode and ``str(error)`` the
FailureReason, so messages are written for the person who submitted the job (they name the
object, the row or the file, and what to do).
"""

from __future__ import annotations

from typing import NamedTuple


class ManifestTask(NamedTuple):
    """One object a job acts on. ``key`` is decoded (never URL-encoded); ``version_id`` None
    means "the current version at execution time" (neither S3 nor COS snapshots a manifest).

    A named tuple, not a dataclass: millions are made per job, and a tuple is made several
    times faster."""

    bucket: str
    key: str
    version_id: str | None


# FailureCodes, named once so callers and tests do not spell them differently.
ETAG_MISMATCH = "ManifestETagMismatch"
NOT_FOUND = "ManifestNotFound"
ACCESS_DENIED = "ManifestAccessDenied"
MALFORMED = "ManifestMalformed"
CHECKSUM_MISMATCH = "ManifestChecksumMismatch"
FORMAT_UNSUPPORTED = "ManifestFormatUnsupported"
TOO_LARGE = "ManifestTooLarge"
UNREADABLE = "ManifestUnreadable"


class ManifestError(Exception):
    """A manifest that cannot be read or used.

    ``code`` is a short FailureCode (see the constants above); ``str()`` is the user-facing
    reason. ``transient`` is True when retrying later may succeed (5xx, throttling, a dropped
    connection), so Preparing can retry instead of failing the job outright.
    """

    def __init__(self, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.transient = transient

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ManifestError({self.code!r}, {self.message!r}, transient={self.transient})"
