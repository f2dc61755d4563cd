"""Task outcomes as a segment stores them, and as report rows (pure)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence

from batchops.manifest.tasks import ManifestTask
from batchops.ops.outcome import TaskOutcome
from batchops.report.rows import ReportRow

# A segment is one DynamoDB item (400 KB at most, with its keys and counters): messages are
# shortened until the encoded outcomes fit this budget, whatever their language.
MAX_ENCODED_BYTES = 300_000
_MESSAGE_CHARS = (200, 60, 16, 0)


def encode_outcomes(outcomes: Sequence[TaskOutcome]) -> bytes:
    for chars in _MESSAGE_CHARS:
        rows = [[int(o.succeeded), o.http_status, o.error_code[:64], o.message[:chars]] for o in outcomes]
        encoded = zlib.compress(json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode(), 6)
        if len(encoded) <= MAX_ENCODED_BYTES:
            return encoded
    raise ValueError(f"the outcomes of {len(outcomes)} tasks do not fit in {MAX_ENCODED_BYTES} bytes")


def decode_outcomes(data: bytes) -> list[TaskOutcome]:
    return [
        TaskOutcome(bool(ok), int(status), str(code), str(message))
        for ok, status, code, message in json.loads(zlib.decompress(data))
    ]


def report_rows(
    tasks: Sequence[ManifestTask], start: int, outcomes: Sequence[TaskOutcome]
) -> Iterator[ReportRow]:
    """Rows for ``outcomes`` of tasks ``start``, ``start + 1``, ... of a chunk."""
    for task, outcome in zip(tasks[start : start + len(outcomes)], outcomes, strict=True):
        yield ReportRow(
            bucket=task.bucket,
            key=task.key,
            version_id=task.version_id,
            succeeded=outcome.succeeded,
            http_status=outcome.http_status,
            error_code=outcome.error_code,
            message=outcome.message,
        )
