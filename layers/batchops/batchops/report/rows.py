"""One completion-report row: what a task did, as one header-less CSV line.

The columns and their order mirror real S3 Batch Operations reports (``shared/reference``
§2.5): ``Bucket, Key, VersionId, TaskStatus, HTTPStatusCode, ErrorCode, ResultMessage``. S3's own
``manifest.json`` names columns 5 and 6 the other way round (``ErrorCode, HTTPStatusCode``) while
its rows carry the HTTP status in column 5 (``...,succeeded,200,,Successful``). We write the rows
as S3 does and name them truthfully in :data:`REPORT_SCHEMA`, so code written for S3 reports reads
ours unchanged and our schema string does not lie.

Rules every line obeys, and why:

- RFC-4180 quoting (a field holding ``,``, ``"``, CR or LF is quoted, ``"`` doubled) done here by
  hand: Python 3.11's csv writer leaves a lone CR unquoted when the line terminator is ``\\n``,
  which would split the record for any reader.
- Lines end in ``\\n``, as S3 reports do.
- The key is form-encoded (``quote_plus(key, safe="/")``) so a results file can be fed back as a
  COSBatchOperations_CSV_V1 manifest, whose reader decodes keys once with ``unquote_plus``: this
  is how a user retries the failed tasks. An encoded key never needs quoting.
- ResultMessage (and ErrorCode) never hold a raw CR or LF, so one line is one row for ``grep``,
  ``wc -l`` and line-splitting readers; ResultMessage is cut to 1024 characters so one chatty
  error cannot bloat a report of millions of rows.
- Formula-injection guard: people open reports in spreadsheets, which run a cell starting with
  ``=``, ``+``, ``-``, ``@``, tab or CR as a formula (OWASP "CSV Injection"). ErrorCode and
  ResultMessage carry text from servers and from users' own object names, so such a value gets a
  leading ``'``. The Key cannot take a ``'`` (it would no longer decode to the key), and needs
  none: ``quote_plus`` encodes ``=``, ``+``, ``@``, tab and CR, and leaves only letters, digits,
  ``_.-~/%+``, so no parenthesis, pipe or quote, hence no function call or DDE payload. Only a
  leading ``-`` would survive, and ``-A1-B1`` is still a formula, so a key's first ``-`` is written
  ``%2D``, which every URL decoder (ours, S3's) turns back into ``-``. Bucket and VersionId are
  written verbatim because they must round-trip as a manifest; the manifest reader is where
  malformed ones are refused.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

TASK_STATUS_SUCCEEDED = "succeeded"
TASK_STATUS_FAILED = "failed"
TASK_STATUSES = (TASK_STATUS_SUCCEEDED, TASK_STATUS_FAILED)

# The order we write. S3 labels columns 5 and 6 "ErrorCode, HTTPStatusCode" but fills them with
# the HTTP status then the error code; we keep S3's data order and fix the label.
REPORT_SCHEMA = "Bucket, Key, VersionId, TaskStatus, HTTPStatusCode, ErrorCode, ResultMessage"
COLUMNS = 7
MAX_MESSAGE_CHARS = 1024

_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_QUOTES = frozenset(',"\r\n')
_UNCHANGED_BY_QUOTE_PLUS = re.compile(r"[A-Za-z0-9_.~/-]*")
_QUOTE_PLUS = [
    chr(byte) if _UNCHANGED_BY_QUOTE_PLUS.fullmatch(chr(byte)) else "+" if byte == 0x20 else f"%{byte:02X}"
    for byte in range(256)
]
"""``quote_plus(key, safe="/")`` of each byte, as a str.translate table indexed by byte."""


@dataclass(frozen=True, slots=True)
class ReportRow:
    bucket: str
    key: str
    version_id: str | None
    succeeded: bool
    http_status: int
    error_code: str
    message: str

    @property
    def task_status(self) -> str:
        return TASK_STATUS_SUCCEEDED if self.succeeded else TASK_STATUS_FAILED


class ReportRowError(ValueError):
    """A line that is not a report row; the message says why."""


def format_row(row: ReportRow) -> str:
    """The row as one CSV line ending in ``\\n``, ready to append to a results file."""
    return row_head(row.bucket, row.key, row.version_id) + row_tail(
        row.succeeded, row.http_status, row.error_code, row.message
    )


# A report has a row per task: the encoded key, the status and the HTTP status never need
# quoting, so only the four free-text fields go through _quote. A line is its head (what the row
# is about) then its tail (what came of it), so that a caller writing many rows can make the
# tail of each distinct outcome once.


def row_head(bucket: str, key: str, version_id: str | None) -> str:
    """``Bucket,Key,VersionId,``: the start of a row's line, up to its TaskStatus."""
    return f"{_quote(bucket)},{encode_key(key)},{_quote(version_id or '')},"


def row_tail(succeeded: bool, http_status: int, error_code: str, message: str) -> str:
    """``TaskStatus,HTTPStatusCode,ErrorCode,ResultMessage`` and the line's end."""
    status = TASK_STATUS_SUCCEEDED if succeeded else TASK_STATUS_FAILED
    return (
        f"{status},{http_status},{_quote(_one_line(guard_formula(error_code)))},"
        f"{_quote(_one_line(guard_formula(message))[:MAX_MESSAGE_CHARS])}\n"
    )


def parse_row(line: str) -> ReportRow:
    """Read one line written by :func:`format_row` (or by S3) back into a row.

    The key is decoded with ``unquote_plus``, exactly as the manifest reader does. ErrorCode and
    ResultMessage come back as written (with any injection guard and truncation), since the
    guard cannot be told apart from a message that really started with ``'``.
    """
    try:
        records = list(csv.reader(io.StringIO(line, newline=""), strict=True))
    except csv.Error as error:
        raise ReportRowError(f"not RFC-4180 CSV ({error}): {line!r}") from None
    if len(records) != 1:
        raise ReportRowError(f"expected one CSV record, found {len(records)} in {line!r}")
    fields = records[0]
    if len(fields) != COLUMNS:
        raise ReportRowError(f"expected {COLUMNS} columns ({REPORT_SCHEMA}), found {len(fields)}")
    bucket, key, version_id, status, http_status, error_code, message = fields
    if status not in TASK_STATUSES:
        raise ReportRowError(f"TaskStatus must be one of {', '.join(TASK_STATUSES)}, not {status!r}")
    try:
        status_code = int(http_status)
    except ValueError:
        raise ReportRowError(f"HTTPStatusCode (column 5) must be an integer, not {http_status!r}") from None
    return ReportRow(
        bucket=bucket,
        key=unquote_plus(key),
        version_id=version_id or None,
        succeeded=status == TASK_STATUS_SUCCEEDED,
        http_status=status_code,
        error_code=error_code,
        message=message,
    )


def encode_key(key: str) -> str:
    """Form-encode a key the way manifests and S3 Inventory do (space -> ``+``, ``+`` -> ``%2B``),
    with a leading ``-`` as ``%2D`` so that no key cell starts like a formula."""
    # Most keys are letters, digits and ``_.-~/`` only, which quote_plus leaves as they are; the
    # others are quote_plus'd by one str.translate over their UTF-8 bytes (read as Latin-1, a
    # character per byte), several times faster than quote_plus's byte-by-byte join.
    if _UNCHANGED_BY_QUOTE_PLUS.fullmatch(key):
        encoded = key
    else:
        encoded = key.encode().decode("latin-1").translate(_QUOTE_PLUS)
    return "%2D" + encoded[1:] if encoded.startswith("-") else encoded


def guard_formula(text: str) -> str:
    """Prefix ``'`` to text a spreadsheet would run as a formula."""
    return "'" + text if text.startswith(_FORMULA_TRIGGERS) else text


def _one_line(text: str) -> str:
    if "\r" not in text and "\n" not in text:
        return text
    return text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


def quote_field(field: str) -> str:
    """A verbatim column (Bucket, VersionId) as RFC-4180 CSV: quoted when it must be."""
    if _NEEDS_QUOTES.isdisjoint(field):
        return field
    return '"' + field.replace('"', '""') + '"'


_quote = quote_field
