"""Report rows: S3's column order, RFC-4180 quoting, one line per row, the formula guard, and keys
that survive being fed back as a COSBatchOperations_CSV_V1 manifest."""

from __future__ import annotations

import csv
import io
from urllib.parse import quote_plus, unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchops.report.rows import (
    MAX_MESSAGE_CHARS,
    REPORT_SCHEMA,
    TASK_STATUS_FAILED,
    TASK_STATUS_SUCCEEDED,
    ReportRow,
    ReportRowError,
    encode_key,
    format_row,
    parse_row,
)

# A real S3 Batch Operations report row (linz/topo-workflows, workflows/storage/README.md).
S3_ROW = (
    "linz-topographic-archive,pfouquet/sub/directory/AS21.tiff.zst,"
    "886twyul.uJ3wIF3zzQG8196hf_SOCCW,succeeded,200,,Successful"
)

ROUND_TRIP_KEYS = [
    "with space.txt",
    "a+b.txt",
    "100%.txt",
    "literal%2B.txt",
    "unicode/日本語/éß💾.bin",
    "comma,key.csv",
    'quote"key',
    "new\nline",
    "carriage\rreturn",
    "/leading/slash",
    '=HYPERLINK("http://x")',
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1)",
    "  spaces  around  ",
]


def row(**changes: object) -> ReportRow:
    values: dict[str, object] = {
        "bucket": "examplebucket-1250000000",
        "key": "photos/a.jpg",
        "version_id": None,
        "succeeded": False,
        "http_status": 404,
        "error_code": "NoSuchKey",
        "message": "The specified key does not exist.",
    }
    values.update(changes)
    return ReportRow(**values)  # type: ignore[arg-type]


def fields(line: str) -> list[str]:
    records = list(csv.reader(io.StringIO(line, newline="")))
    assert len(records) == 1
    return records[0]


def test_a_real_s3_row_reads_with_status_in_column_5_and_error_code_in_column_6() -> None:
    # GIVEN a row exactly as S3 Batch Operations wrote it
    # WHEN it is parsed
    parsed = parse_row(S3_ROW + "\n")
    # THEN column 5 is the HTTP status and column 6 the (empty) error code
    assert parsed == ReportRow(
        bucket="linz-topographic-archive",
        key="pfouquet/sub/directory/AS21.tiff.zst",
        version_id="886twyul.uJ3wIF3zzQG8196hf_SOCCW",
        succeeded=True,
        http_status=200,
        error_code="",
        message="Successful",
    )


def test_we_write_the_real_s3_row_byte_for_byte() -> None:
    # GIVEN the task that S3 reported in its real row
    task = parse_row(S3_ROW)
    # WHEN we format it
    # THEN we produce S3's line, ending in "\n"
    assert format_row(task) == S3_ROW + "\n"


def test_a_failed_row_puts_http_status_then_error_code_and_the_schema_names_them_so() -> None:
    # GIVEN a failed task with HTTP 404 NoSuchKey
    line = format_row(row(http_status=404, error_code="NoSuchKey", message="gone"))
    # WHEN the line is split into columns
    columns = fields(line)
    # THEN column 5 is "404", column 6 "NoSuchKey", and REPORT_SCHEMA names them in that order
    assert columns == ["examplebucket-1250000000", "photos/a.jpg", "", "failed", "404", "NoSuchKey", "gone"]
    schema = [name.strip() for name in REPORT_SCHEMA.split(",")]
    assert schema[4] == "HTTPStatusCode"
    assert schema[5] == "ErrorCode"
    assert schema == [
        "Bucket",
        "Key",
        "VersionId",
        "TaskStatus",
        "HTTPStatusCode",
        "ErrorCode",
        "ResultMessage",
    ]


def test_aws_documented_failed_row_with_doubled_quotes_parses() -> None:
    # GIVEN the failed row from AWS's report examples, with RFC-4180 doubled quotes
    line = (
        "awsexamplebucket1,image_14975,,failed,200,PermanentFailure,"
        '"Lambda returned function error: {""errorMessage"":""boom""}"'
    )
    # WHEN it is parsed
    parsed = parse_row(line)
    # THEN the quotes are undoubled and the status is failed
    assert parsed.task_status == TASK_STATUS_FAILED
    assert parsed.error_code == "PermanentFailure"
    assert parsed.message == 'Lambda returned function error: {"errorMessage":"boom"}'


def test_task_status_words_are_the_ones_s3_writes() -> None:
    assert row(succeeded=True).task_status == TASK_STATUS_SUCCEEDED == "succeeded"
    assert row(succeeded=False).task_status == TASK_STATUS_FAILED == "failed"


def test_version_id_none_is_an_empty_column_and_reads_back_as_none() -> None:
    # GIVEN rows with and without a version id
    without, with_version = row(version_id=None), row(version_id="MTg0NDUxNjQ3NDM2NzY3NjUxNzQ")
    # WHEN formatted and parsed
    # THEN None is an empty third column, and both survive the round trip
    assert fields(format_row(without))[2] == ""
    assert parse_row(format_row(without)).version_id is None
    assert parse_row(format_row(with_version)).version_id == "MTg0NDUxNjQ3NDM2NzY3NjUxNzQ"


def test_fields_with_comma_or_quote_are_quoted_and_quotes_doubled() -> None:
    # GIVEN a message holding a comma and quotes
    message = 'copy failed, source said "no"'
    # WHEN it is formatted
    line = format_row(row(message=message))
    # THEN the field is RFC-4180 quoted with doubled quotes, and reads back unchanged
    assert line.endswith(',"copy failed, source said ""no"""\n')
    assert parse_row(line).message == message


def test_a_lone_cr_in_a_verbatim_column_is_quoted_so_the_record_stays_whole() -> None:
    # GIVEN a version id holding a lone CR (Python 3.11's csv writer would leave it unquoted)
    odd = row(version_id="v1\rv2")
    # WHEN it is formatted
    line = format_row(odd)
    # THEN the field is quoted and the line still reads back as one record
    assert ',"v1\rv2",' in line
    assert parse_row(line).version_id == "v1\rv2"


def test_result_message_never_holds_a_raw_newline() -> None:
    # GIVEN an error message spanning lines in every convention, and a multi-line error code
    message = "line one\nline two\r\nline three\rline four"
    # WHEN it is formatted
    line = format_row(row(error_code="Bad\nCode", message=message))
    # THEN the only line break is the terminator, and CR/LF became spaces
    assert line.count("\n") == 1
    assert line.endswith("\n")
    assert "\r" not in line
    parsed = parse_row(line)
    assert parsed.message == "line one line two line three line four"
    assert parsed.error_code == "Bad Code"


def test_result_message_is_cut_to_1024_characters() -> None:
    # GIVEN a message of 5000 characters, and one that also needs the formula guard
    long_message, long_formula = "x" * 5000, "=" + "y" * 5000
    # WHEN they are formatted
    plain = parse_row(format_row(row(message=long_message))).message
    guarded = parse_row(format_row(row(message=long_formula))).message
    # THEN each written message is exactly 1024 characters, the guard kept
    assert plain == "x" * MAX_MESSAGE_CHARS
    assert len(guarded) == MAX_MESSAGE_CHARS
    assert guarded.startswith("'=")


@pytest.mark.parametrize(
    "dangerous",
    ["=cmd|' /C calc'!A0", "+1+1", "-1+1", "@SUM(A1:A2)", "\t=1", "\r=1"],
)
def test_formula_injection_guard_on_error_code_and_message(dangerous: str) -> None:
    # GIVEN an error code and a message a spreadsheet would run as a formula
    # WHEN they are formatted
    columns = fields(format_row(row(error_code=dangerous, message=dangerous)))
    # THEN both start with "'" so the spreadsheet shows them as text
    assert columns[5].startswith("'")
    assert columns[6].startswith("'")
    assert columns[6][1:] == dangerous.replace("\r", " ")


@pytest.mark.parametrize("harmless", ["NoSuchKey", "Successful", "", " =1", "'already quoted", "1-2"])
def test_harmless_text_is_written_as_is(harmless: str) -> None:
    columns = fields(format_row(row(error_code=harmless, message=harmless)))
    assert columns[5] == harmless
    assert columns[6] == harmless


@pytest.mark.parametrize("key", ROUND_TRIP_KEYS)
def test_keys_round_trip_through_a_report_fed_back_as_a_manifest(key: str) -> None:
    # GIVEN a task on an awkward key
    task = row(key=key, version_id="v1")
    # WHEN its report line is read as a COSBatchOperations_CSV_V1 manifest reads it
    # (csv columns Bucket, Key, VersionId; the key form-decoded once with unquote_plus)
    line = format_row(task)
    bucket, encoded_key, version_id, *_ = fields(line)
    # THEN the manifest names exactly the same object, and parse_row agrees
    assert (bucket, unquote_plus(encoded_key), version_id) == (task.bucket, key, "v1")
    assert parse_row(line).key == key
    # AND the encoded key is a bare, unquoted field a spreadsheet cannot run
    assert not set(encoded_key) & set(",\"\r\n()|!'=@ ")
    assert line.split(",")[1] == encoded_key


def test_keys_are_form_encoded_like_s3_inventory() -> None:
    # GIVEN a key with a space, a literal "+", an encoded-looking "%2B" and a leading "/"
    # WHEN formatted
    columns = fields(format_row(row(key="/a b+c%2B")))
    # THEN space is "+", "+" is "%2B", "%" is "%25" and "/" stays
    assert columns[1] == "/a+b%2Bc%252B"


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("", "expected one CSV record, found 0"),
        ("a,b,,succeeded,200,,ok\nc,d,,failed,404,NoSuchKey,x\n", "found 2"),
        ("a,b,,succeeded,200,ok", "expected 7 columns"),
        ("a,b,,Succeeded,200,,ok", "TaskStatus must be one of"),
        ("a,b,,failed,NoSuchKey,404,ok", "HTTPStatusCode \\(column 5\\) must be an integer"),
        ('a,b,,failed,404,X,"unterminated', "not RFC-4180 CSV"),
    ],
)
def test_parse_row_refuses_what_is_not_a_report_row(line: str, why: str) -> None:
    with pytest.raises(ReportRowError, match=why):
        parse_row(line)


@settings(max_examples=300, deadline=None)
@given(
    key=st.text(min_size=1, max_size=60),
    version_id=st.none() | st.text(alphabet="abcdefABCDEF0123456789._-+/", min_size=1, max_size=32),
    succeeded=st.booleans(),
    http_status=st.integers(min_value=0, max_value=599),
    error_code=st.text(max_size=40),
    message=st.text(max_size=1500),
)
def test_any_row_is_one_line_and_names_the_same_object(
    *, key: str, version_id: str | None, succeeded: bool, http_status: int, error_code: str, message: str
) -> None:
    # GIVEN any task
    task = ReportRow("bucket-1", key, version_id, succeeded, http_status, error_code, message)
    # WHEN formatted and parsed back
    line = format_row(task)
    parsed = parse_row(line)
    # THEN it is one physical line naming the same object and outcome, with a bounded message
    assert line.endswith("\n")
    assert "\n" not in line[:-1]
    assert "\r" not in line
    assert (parsed.bucket, parsed.key, parsed.version_id) == ("bucket-1", key, version_id)
    assert (parsed.succeeded, parsed.http_status) == (succeeded, http_status)
    assert len(parsed.message) <= MAX_MESSAGE_CHARS
    assert not parsed.message.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert not parsed.error_code.startswith(("=", "+", "-", "@", "\t", "\r"))


@settings(max_examples=500)
@given(
    st.text(alphabet=st.sampled_from("ab09_.~/-+ %é\u4e2d=@\t\r\n,\"'"), max_size=12) | st.text(max_size=12)
)
def test_a_key_is_encoded_exactly_as_quote_plus_encodes_it(key: str) -> None:
    # (the fast path for plain keys must agree with quote_plus, the form manifests are read in)
    expected = quote_plus(key, safe="/")
    assert encode_key(key) == ("%2D" + expected[1:] if expected.startswith("-") else expected)
