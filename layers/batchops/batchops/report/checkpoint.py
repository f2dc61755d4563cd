"""Where a report written in steps stands: what a finalize stores in the ledger when it stops
before its deadline, and what the next finalize goes on from.

- ``next_index``, ``next_start``: the first segment not written yet (segments come in
  (index, start) order, so the rows before it are all in the files below);
- ``succeeded``, ``failed``: the tasks of the segments written so far (the job's final counts
  come from the same segments as its rows);
- ``files``: the results files completed so far, each with the MD5 of its whole content, for
  manifest.json. A step completes every file it has open before it stops, so no file, upload or
  running MD5 crosses from one step to the next;
- ``uploads``: multipart uploads the current step started (a file rolling over adds one). A
  step that dies leaves them in progress; the next step aborts them before it writes.

Encoded as compact JSON, versioned; keys are not stored, they follow from the report's prefix,
the job and (status, number), as ``results_key`` makes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from batchops.report.rows import TASK_STATUSES
from batchops.report.writer import WrittenFile, results_key

VERSION = 1


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """A multipart upload a step started: results file ``number`` of ``status``."""

    status: str
    number: int
    upload_id: str


@dataclass(frozen=True, slots=True)
class ReportCheckpoint:
    next_index: int = 0
    next_start: int = 0
    succeeded: int = 0
    failed: int = 0
    files: tuple[WrittenFile, ...] = ()
    uploads: tuple[PendingUpload, ...] = ()


START = ReportCheckpoint()


def encode_report_checkpoint(checkpoint: ReportCheckpoint) -> str:
    return json.dumps(
        {
            "v": VERSION,
            "next": [checkpoint.next_index, checkpoint.next_start],
            "counts": [checkpoint.succeeded, checkpoint.failed],
            "files": [[f.status, f.number, f.md5] for f in checkpoint.files],
            "uploads": [[u.status, u.number, u.upload_id] for u in checkpoint.uploads],
        },
        separators=(",", ":"),
    )


def decode_report_checkpoint(text: str, prefix: str | None, job_id: str) -> ReportCheckpoint:
    """The checkpoint ``encode_report_checkpoint`` wrote for this job's report (``prefix`` and
    ``job_id`` give the keys); ValueError for anything else."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise ValueError("unknown version")
        next_index, next_start = (_count(n) for n in _pair(data["next"]))
        succeeded, failed = (_count(n) for n in _pair(data["counts"]))
        files = tuple(
            WrittenFile(status, number, results_key(prefix, job_id, status, number), _md5(md5))
            for status, number, md5 in (_file(f) for f in data["files"])
        )
        uploads = tuple(
            PendingUpload(status, number, upload_id)
            for status, number, upload_id in (_file(u) for u in data["uploads"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a report checkpoint: {text[:200]!r}") from exc
    if len({(f.status, f.number) for f in files}) != len(files):
        raise ValueError(f"not a report checkpoint (a file listed twice): {text[:200]!r}")
    return ReportCheckpoint(next_index, next_start, succeeded, failed, files, uploads)


def _pair(value: Any) -> tuple[Any, Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError("not a pair")
    return value[0], value[1]


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError("not a count")
    return value


def _file(value: Any) -> tuple[str, int, str]:
    if not isinstance(value, list) or len(value) != 3:
        raise ValueError("not a file")
    status, number, text = value
    if status not in TASK_STATUSES or not isinstance(text, str) or not text:
        raise ValueError("not a file")
    return status, _count(number), text


def _md5(text: str) -> str:
    if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError("not an MD5")
    return text
