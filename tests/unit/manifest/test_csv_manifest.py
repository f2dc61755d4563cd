"""CSV manifests: every special key decodes exactly once, quoting holds, bad rows are named."""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Iterator, Sequence
from urllib.parse import quote_plus

import pytest

from batchops.manifest.csv_manifest import iter_csv_tasks, parse_fields
from batchops.manifest.tasks import MALFORMED, ManifestError, ManifestTask

BKV = ("Bucket", "Key", "VersionId")


def tasks(data: bytes | str, fields: Sequence[str] = ("Bucket", "Key")) -> list[ManifestTask]:
    raw = data.encode() if isinstance(data, str) else data
    return list(iter_csv_tasks(io.BytesIO(raw), fields))


def one_key(encoded: str) -> str:
    [task] = tasks(f"bucket-1,{encoded}\n")
    return task.key


@pytest.mark.parametrize(
    ("encoded", "key"),
    [
        ("object%20key%20with%20spaces", "object key with spaces"),
        ("a+b", "a b"),  # S3 Inventory writes a space as +
        ("a%2Bb", "a+b"),  # ... and a literal + as %2B
        ("a%252Bb", "a%2Bb"),  # decoded once only
        ("100%", "100%"),  # a lone % is not an escape
        ("50%25off", "50%off"),
        ("%2Fleading", "/leading"),
        ("/leading", "/leading"),
        ("./dot", "./dot"),
        ("trailing/", "trailing/"),
        ("caf%C3%A9", "caf\u00e9"),
        ("%E4%B8%AD%E6%96%87.txt", "\u4e2d\u6587.txt"),
        ("line%0Abreak%0Dcr", "line\nbreak\rcr"),
        ("q%22uote%2Ccomma", 'q"uote,comma'),
    ],
)
def test_keys_are_form_decoded_exactly_once(encoded: str, key: str) -> None:
    # GIVEN a manifest row whose key is URL-encoded as S3 writes it
    # WHEN the manifest is read
    # THEN the key is decoded once with form decoding
    assert one_key(encoded) == key


def test_nfc_and_nfd_spellings_stay_distinct_keys() -> None:
    # GIVEN the same word in NFC and in NFD, once encoded and once raw
    nfc = unicodedata.normalize("NFC", "caf\u00e9")
    nfd = unicodedata.normalize("NFD", "caf\u00e9")
    assert nfc != nfd
    data = f"b1,{quote_plus(nfc)}\nb1,{quote_plus(nfd)}\nb1,{nfc}\nb1,{nfd}\n"
    # WHEN read
    keys = [t.key for t in tasks(data)]
    # THEN no normalization happened
    assert keys == [nfc, nfd, nfc, nfd]


def test_rfc4180_quoting_carries_commas_quotes_newlines_and_cr() -> None:
    # GIVEN quoted keys holding every CSV special character, CRLF line ends between rows
    data = 'b1,"a,b"\r\nb1,"say ""hi"""\r\nb1,"multi\nline"\r\nb1,"cr\rinside"\r\nb1,"crlf\r\ninside"\r\n'
    # WHEN read
    keys = [t.key for t in tasks(data)]
    # THEN each field is taken whole
    assert keys == ["a,b", 'say "hi"', "multi\nline", "cr\rinside", "crlf\r\ninside"]


def test_a_1024_byte_key_and_a_longer_one_pass_through() -> None:
    # GIVEN keys of 1,024 and 1,025 UTF-8 bytes (the limit is enforced per task, not here)
    k1024 = "\u00e9" * 512
    k1025 = "x" + k1024
    assert len(k1024.encode()) == 1024
    # WHEN read
    # THEN both come back intact
    assert [t.key for t in tasks(f"b1,{quote_plus(k1024)}\nb1,{quote_plus(k1025)}\n")] == [k1024, k1025]


def test_ignore_columns_and_version_ids_in_any_position() -> None:
    # GIVEN a report-like manifest: Bucket, Key, VersionId then ignored status columns
    data = "b1,k1,v1,succeeded,200,,\nb2,k2,,failed,404,NoSuchKey,gone\n"
    fields = ("Bucket", "Key", "VersionId", "Ignore", "Ignore", "Ignore", "Ignore")
    # WHEN read
    # THEN version ids are taken and an empty one means "no version"
    assert tasks(data, fields) == [ManifestTask("b1", "k1", "v1"), ManifestTask("b2", "k2", None)]
    # AND the columns may come in any order
    assert tasks("x,k,v,b\n", ("Ignore", "Key", "VersionId", "Bucket")) == [ManifestTask("b", "k", "v")]


def test_blank_lines_and_a_bom_are_skipped() -> None:
    data = "\ufeffb1,k1\n\n\r\nb1,k2\n   \nb1,k3"
    assert [t.key for t in tasks(data)] == ["k1", "k2", "k3"]


def test_cos_spaces_after_commas_are_not_part_of_fields() -> None:
    # GIVEN the COS documentation's spelling, with a space after each comma
    data = "examplebucket-1250000000, exampleobject, PZ9ibn9D5lP6p298B7S9_ceqx1n5EJ0p\n"
    # WHEN read
    # THEN bucket, key and version carry no spaces
    assert tasks(data, BKV) == [
        ManifestTask("examplebucket-1250000000", "exampleobject", "PZ9ibn9D5lP6p298B7S9_ceqx1n5EJ0p")
    ]


def test_spaces_that_belong_to_a_key_are_kept() -> None:
    # GIVEN keys that really start or end with a space: encoded, quoted, or trailing raw
    data = 'b1,%20lead\nb1,+plus\nb1, " quoted "\nb1,trail \nb1 , mid dle\n'
    # WHEN read
    keys = [(t.bucket, t.key) for t in tasks(data)]
    # THEN only the spaces right after a comma (and around the bucket) are dropped
    assert keys == [("b1", " lead"), ("b1", " plus"), ("b1", " quoted "), ("b1", "trail "), ("b1", "mid dle")]


@pytest.mark.parametrize(
    ("data", "fields", "why"),
    [
        ("b1,k1\nb1\n", ("Bucket", "Key"), "row 2 has 1 column"),
        ("b1,k1\nb1,a,b\n", ("Bucket", "Key"), "row 2 has 3 column"),
        ("b1,k1\n,k2\n", ("Bucket", "Key"), "row 2 has an empty Bucket"),
        ("b1,k1\n\nb1,\n", ("Bucket", "Key"), "row 3 has an empty Key"),
        ('b1,"a\nb"\nb1,k,x\n', ("Bucket", "Key"), r"row 2 \(line 3\) has 3 column"),
        ("b1,%FF\n", ("Bucket", "Key"), "row 1: Key '%FF' has %-escapes that are not UTF-8"),
        ('b1,"unterminated\n', ("Bucket", "Key"), "not valid CSV"),
        ('b1,"a"b\n', ("Bucket", "Key"), "not valid CSV at row 1"),
    ],
)
def test_malformed_rows_fail_naming_the_row(data: str, fields: Sequence[str], why: str) -> None:
    with pytest.raises(ManifestError, match=why) as caught:
        tasks(data, fields)
    assert caught.value.code == MALFORMED


def test_invalid_utf8_fails_the_manifest() -> None:
    with pytest.raises(ManifestError, match="not valid UTF-8") as caught:
        tasks(b"b1,k1\nb1,\xff\xfe\n")
    assert caught.value.code == MALFORMED


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        (("Bucket",), "must name Key exactly once"),
        (("Bucket", "Key", "Key"), "must name Key exactly once"),
        (("Bucket", "Key", "VersionId", "VersionId"), "VersionId at most once"),
        (("Bucket", "Key", "Size"), r"unknown column\(s\) \['Size'\]"),
    ],
)
def test_bad_fields_are_refused(fields: Sequence[str], why: str) -> None:
    with pytest.raises(ManifestError, match=why):
        parse_fields(fields)


def test_the_error_reads_as_a_failure_reason() -> None:
    error = ManifestError("ManifestMalformed", "manifest row 2 has an empty Key")
    assert str(error) == "manifest row 2 has an empty Key"
    assert error.code == "ManifestMalformed"
    assert error.transient is False


class ChunksOnly:
    """Like a StreamingBody used through iter_chunks only: no file methods at all."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data = data
        self.size = size
        self.closed = False

    def iter_chunks(self, chunk_size: int = 1024) -> Iterator[bytes]:
        for start in range(0, len(self.data), self.size):
            yield self.data[start : start + self.size]

    def close(self) -> None:
        self.closed = True


def test_reads_from_a_body_with_only_iter_chunks_even_split_mid_character() -> None:
    # GIVEN a body that hands out 3-byte pieces, splitting multi-byte characters and CRLFs
    data = '\ufeffb1,"caf\u00e9,\r\n\u4e2d"\r\nb2,x\r\n'.encode()
    body = ChunksOnly(data, 3)
    # WHEN read as a manifest
    result = list(iter_csv_tasks(body, ("Bucket", "Key")))
    # THEN the pieces reassemble exactly, and the lent body is not closed
    assert result == [ManifestTask("b1", "caf\u00e9,\r\n\u4e2d", None), ManifestTask("b2", "x", None)]
    assert body.closed is False


def test_the_callers_stream_stays_open() -> None:
    stream = io.BytesIO(b"b1,k1\n")
    assert len(list(iter_csv_tasks(stream, ("Bucket", "Key")))) == 1
    assert not stream.closed
