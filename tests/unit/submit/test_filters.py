"""Object filters: parsing a rule's filters, matching inventory records, and reading those records."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, BinaryIO

import pytest

from batchops.manifest.inventory import (
    InventoryRecord,
    iter_inventory_records,
    iter_inventory_tasks,
    parse_inventory_manifest,
)
from batchops.manifest.tasks import (
    CHECKSUM_MISMATCH,
    FORMAT_UNSUPPORTED,
    MALFORMED,
    ManifestError,
    ManifestTask,
)
from batchops.submit.errors import RuleError
from batchops.submit.filters import MAX_AGE, ObjectFilters, matcher, parse_age, parse_filters

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


def record(
    key: str = "photos/cat.jpg",
    *,
    size: int | None = 500,
    last_modified: datetime | None = NOW - timedelta(days=1),
    storage_class: str | None = "STANDARD",
    is_latest: bool | None = True,
    is_delete_marker: bool | None = False,
    version_id: str | None = "v1",
) -> InventoryRecord:
    return InventoryRecord(
        ManifestTask("src-bucket", key, version_id),
        size,
        last_modified,
        storage_class,
        is_latest,
        is_delete_marker,
    )


def passes(filters: dict[str, Any], candidate: InventoryRecord, now: datetime = NOW) -> bool:
    return matcher(parse_filters("r1", filters), now)(candidate)


# -- no filters --------------------------------------------------------------------------------


def test_no_filters_is_empty_and_keeps_everything() -> None:
    # GIVEN filters that set nothing, including explicit false flags
    for data in ({}, {"latestVersionOnly": False, "excludeDeleteMarkers": False}):
        filters = parse_filters("r1", data)
        # THEN they are empty, and keep even a record that knows nothing about itself
        assert filters.is_empty
        assert filters == ObjectFilters()
        bare = record(
            size=None, last_modified=None, storage_class=None, is_latest=None, is_delete_marker=None
        )
        assert matcher(filters, NOW)(bare)


@pytest.mark.parametrize(
    "data",
    [
        {"keyPrefixes": ["a"]},
        {"keyRegex": "a"},
        {"sizeGreaterThan": 0},
        {"modifiedBefore": "1d"},
        {"storageClasses": ["STANDARD"]},
        {"latestVersionOnly": True},
        {"excludeDeleteMarkers": True},
    ],
)
def test_any_set_filter_makes_them_non_empty(data: dict[str, Any]) -> None:
    assert not parse_filters("r1", data).is_empty


# -- key filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("photos/cat.jpg", True),
        ("logs/2026/app.log", True),
        ("photo/cat.jpg", False),  # not a prefix of either entry
        ("Photos/cat.jpg", False),  # case-sensitive
        ("tmp/photos/cat.jpg", False),  # a prefix, not a substring
    ],
)
def test_a_key_passes_prefixes_when_any_entry_is_its_prefix(key: str, expected: bool) -> None:
    assert passes({"keyPrefixes": ["photos/", "logs/"]}, record(key)) is expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [("a/b.jpg", True), ("a/b.png", True), ("a/b.jpeg", False), ("a/b.JPG", False), ("jpg/b", False)],
)
def test_a_key_passes_suffixes_when_any_entry_ends_it(key: str, expected: bool) -> None:
    assert passes({"keySuffixes": [".jpg", ".png"]}, record(key)) is expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [("a/2026/b", True), ("x/backup-y", True), ("2026", True), ("a/2025/b", False)],
)
def test_a_key_passes_substrings_when_any_entry_occurs_in_it(key: str, expected: bool) -> None:
    assert passes({"keySubstrings": ["2026", "backup"]}, record(key)) is expected


def test_every_kind_of_key_filter_given_must_pass() -> None:
    # GIVEN a prefix, a suffix and a substring filter together
    filters = {"keyPrefixes": ["photos/"], "keySuffixes": [".jpg"], "keySubstrings": ["2026"]}
    # THEN a key must satisfy all three kinds
    assert passes(filters, record("photos/2026/cat.jpg"))
    assert not passes(filters, record("photos/2025/cat.jpg"))
    assert not passes(filters, record("photos/2026/cat.png"))
    assert not passes(filters, record("videos/2026/cat.jpg"))


def test_key_filters_see_the_decoded_key() -> None:
    # GIVEN a key with a space, a plus and non-ASCII characters (inventories URL-encode it)
    key = "dir/a b+c/é.txt"
    # THEN filters match the key as it is, never its encoded form
    assert passes({"keyPrefixes": ["dir/a b+c/"], "keySuffixes": ["é.txt"]}, record(key))
    assert not passes({"keySubstrings": ["%20", "+b"]}, record(key))


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        (r"\d{4}/", "logs/2026/x", True),  # search: anywhere in the key
        (r"^logs/", "logs/2026/x", True),
        (r"^logs/", "old/logs/x", False),
        (r"\.tmp$", "a.tmp", True),
        (r"\.tmp$", "a.tmp.bak", False),
    ],
)
def test_key_regex_uses_search(pattern: str, key: str, expected: bool) -> None:
    assert passes({"keyRegex": pattern}, record(key)) is expected


def test_the_regex_is_kept_as_text_and_compiled_when_matching() -> None:
    # GIVEN a parsed regex filter
    filters = parse_filters("r1", {"keyRegex": "^a"})
    # THEN the filters hold the text (comparable, printable); matching compiles it
    assert filters.key_regex == "^a"
    assert matcher(filters, NOW)(record("abc"))


# -- size filters ------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "expected"), [(99, False), (100, False), (101, True), (10**12, True)])
def test_size_greater_than_is_strict(size: int, expected: bool) -> None:
    assert passes({"sizeGreaterThan": 100}, record(size=size)) is expected


@pytest.mark.parametrize(("size", "expected"), [(0, True), (99, True), (100, False), (101, False)])
def test_size_less_than_is_strict(size: int, expected: bool) -> None:
    assert passes({"sizeLessThan": 100}, record(size=size)) is expected


def test_a_size_window_keeps_sizes_strictly_inside() -> None:
    filters = {"sizeGreaterThan": 10, "sizeLessThan": 12}
    assert [size for size in range(8, 15) if passes(filters, record(size=size))] == [11]


def test_zero_byte_objects_pass_greater_than_nothing_only_with_a_size() -> None:
    assert not passes({"sizeGreaterThan": 0}, record(size=0))
    assert passes({"sizeLessThan": 1}, record(size=0))


@pytest.mark.parametrize("data", [{"sizeGreaterThan": 0}, {"sizeLessThan": 10**15}])
def test_a_record_without_a_size_fails_size_filters(data: dict[str, Any]) -> None:
    # GIVEN a delete marker or an inventory without a Size column: the size is unknown
    # THEN it fails the filter, however permissive
    assert not passes(data, record(size=None))


# -- modified filters --------------------------------------------------------------------------

CUTOFF = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("modified", "expected"),
    [
        (CUTOFF - timedelta(microseconds=1), False),
        (CUTOFF, False),
        (CUTOFF + timedelta(milliseconds=1), True),
    ],
)
def test_modified_after_an_absolute_time_is_strict(modified: datetime, expected: bool) -> None:
    assert passes({"modifiedAfter": "2026-01-01T00:00:00Z"}, record(last_modified=modified)) is expected


@pytest.mark.parametrize(
    ("modified", "expected"),
    [
        (CUTOFF - timedelta(milliseconds=1), True),
        (CUTOFF, False),
        (CUTOFF + timedelta(microseconds=1), False),
    ],
)
def test_modified_before_an_absolute_time_is_strict(modified: datetime, expected: bool) -> None:
    assert passes({"modifiedBefore": "2026-01-01T00:00:00Z"}, record(last_modified=modified)) is expected


def test_an_absolute_time_in_another_zone_means_the_same_instant() -> None:
    # GIVEN the cutoff written as 08:00 at UTC+8, which is midnight UTC
    filters = {"modifiedBefore": "2026-01-01T08:00:00+08:00"}
    # THEN it is compared as an instant
    assert parse_filters("r1", filters).modified_before == CUTOFF
    assert passes(filters, record(last_modified=CUTOFF - timedelta(seconds=1)))
    assert not passes(filters, record(last_modified=CUTOFF))


@pytest.mark.parametrize(
    ("age", "delta"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90))],
)
def test_relative_ages_count_back_from_now(age: str, delta: timedelta) -> None:
    # GIVEN an age and the fixed instant the matcher is built at
    bound = NOW - delta
    one_ms = timedelta(milliseconds=1)
    # THEN modifiedBefore keeps what is older than the age, modifiedAfter what is younger
    assert parse_filters("r1", {"modifiedBefore": age}).modified_before == delta
    assert passes({"modifiedBefore": age}, record(last_modified=bound - one_ms))
    assert not passes({"modifiedBefore": age}, record(last_modified=bound))
    assert passes({"modifiedAfter": age}, record(last_modified=bound + one_ms))
    assert not passes({"modifiedAfter": age}, record(last_modified=bound))


def test_ages_resolve_against_the_now_given_to_the_matcher() -> None:
    # GIVEN one filter and a record modified on 2026-01-01
    filters = parse_filters("r1", {"modifiedBefore": "30d"})
    modified = record(last_modified=CUTOFF)
    # THEN it is older than 30 days in March, and not in mid-January (now in any zone)
    assert matcher(filters, datetime(2026, 3, 1, tzinfo=UTC))(modified)
    assert not matcher(filters, datetime(2026, 1, 15, 9, tzinfo=timezone(timedelta(hours=9))))(modified)


def test_a_window_of_ages_keeps_what_lies_between() -> None:
    filters = {"modifiedAfter": "60d", "modifiedBefore": "30d"}
    assert passes(filters, record(last_modified=NOW - timedelta(days=45)))
    assert not passes(filters, record(last_modified=NOW - timedelta(days=61)))
    assert not passes(filters, record(last_modified=NOW - timedelta(days=29)))


@pytest.mark.parametrize("data", [{"modifiedAfter": "2000-01-01T00:00:00Z"}, {"modifiedBefore": "1m"}])
def test_a_record_without_a_modified_time_fails_time_filters(data: dict[str, Any]) -> None:
    assert not passes(data, record(last_modified=None))


def test_the_matcher_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        matcher(ObjectFilters(), datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0m", timedelta(0)),
        ("1d", timedelta(days=1)),
        ("36525d", MAX_AGE),
        ("876600h", MAX_AGE),
    ],
)
def test_parse_age(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["", "d", "30", "30s", "30D", "1w", "-1d", "1.5d", " 1d", "36526d", "٣d"])
def test_parse_age_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_age(text)


# -- storage class and version filters ---------------------------------------------------------


@pytest.mark.parametrize(
    ("storage_class", "expected"),
    [("STANDARD", True), ("standard_ia", True), ("GLACIER", False), ("", False), (None, False)],
)
def test_storage_classes_match_any_listed_ignoring_case(storage_class: str | None, expected: bool) -> None:
    filters = {"storageClasses": ["Standard", "STANDARD_IA"]}
    assert passes(filters, record(storage_class=storage_class)) is expected


def test_parsed_storage_classes_are_upper_case() -> None:
    assert parse_filters("r1", {"storageClasses": [" deep_archive", "GLACIER"]}).storage_classes == {
        "DEEP_ARCHIVE",
        "GLACIER",
    }


@pytest.mark.parametrize(("is_latest", "expected"), [(True, True), (False, False), (None, False)])
def test_latest_version_only_needs_is_latest_true(is_latest: bool | None, expected: bool) -> None:
    assert passes({"latestVersionOnly": True}, record(is_latest=is_latest)) is expected


@pytest.mark.parametrize(("is_marker", "expected"), [(False, True), (True, False), (None, False)])
def test_exclude_delete_markers_needs_is_delete_marker_false(is_marker: bool | None, expected: bool) -> None:
    assert passes({"excludeDeleteMarkers": True}, record(is_delete_marker=is_marker)) is expected


def test_hand_built_filters_match_like_parsed_ones() -> None:
    # GIVEN filters built in code (lower-case storage class, a timedelta age)
    filters = ObjectFilters(
        key_prefixes=("photos/",),
        storage_classes=frozenset({"standard"}),
        modified_before=timedelta(hours=1),
        latest_version_only=True,
    )
    keep = matcher(filters, NOW)
    # THEN they behave as the parsed equivalent
    assert keep(record())
    assert not keep(record(last_modified=NOW))
    assert not keep(record(storage_class="GLACIER"))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"size_greater_than": -1}, "negative"),
        ({"size_less_than": -5}, "negative"),
        ({"modified_after": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"modified_before": timedelta(days=-1)}, "age between"),
        ({"modified_before": MAX_AGE + timedelta(days=1)}, "age between"),
    ],
)
def test_hand_built_filters_refuse_what_cannot_be_matched(changes: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        ObjectFilters(**changes)


# -- parsing -----------------------------------------------------------------------------------


def test_every_filter_parses_from_camel_case_json() -> None:
    # GIVEN a rule's filters with every key, as they appear in BATCHOPS_RULES
    data = json.loads(
        """{
        "keyPrefixes": ["photos/", "logs/", "photos/"],
        "keySuffixes": [".jpg"],
        "keySubstrings": ["2026"],
        "keyRegex": "^[a-z]+/",
        "sizeGreaterThan": 1024,
        "sizeLessThan": 1073741824,
        "modifiedAfter": "2025-06-01T00:00:00.000Z",
        "modifiedBefore": "30d",
        "storageClasses": ["STANDARD", "standard_ia"],
        "latestVersionOnly": true,
        "excludeDeleteMarkers": true
    }"""
    )
    # WHEN parsed
    filters = parse_filters("nightly", data)
    # THEN each lands in its field, duplicates dropped, times as instants or ages
    assert filters == ObjectFilters(
        key_prefixes=("photos/", "logs/"),
        key_suffixes=(".jpg",),
        key_substrings=("2026",),
        key_regex="^[a-z]+/",
        size_greater_than=1024,
        size_less_than=1073741824,
        modified_after=datetime(2025, 6, 1, tzinfo=UTC),
        modified_before=timedelta(days=30),
        storage_classes=frozenset({"STANDARD", "STANDARD_IA"}),
        latest_version_only=True,
        exclude_delete_markers=True,
    )
    assert not filters.is_empty


@pytest.mark.parametrize(
    ("data", "field", "why"),
    [
        ({"keyPrefix": ["a"]}, "keyPrefix", "unknown filter"),
        ({"KeyPrefixes": ["a"]}, "KeyPrefixes", "unknown filter"),
        ({"keyPrefixes": "photos/"}, "keyPrefixes", "non-empty list"),
        ({"keyPrefixes": []}, "keyPrefixes", "non-empty list"),
        ({"keyPrefixes": ["a", ""]}, "keyPrefixes", "non-empty string"),
        ({"keySuffixes": [7]}, "keySuffixes", "non-empty string"),
        ({"keySubstrings": ["x" * 1025]}, "keySubstrings", "at most 1024"),
        ({"keyRegex": "(unclosed"}, "keyRegex", "not a valid regular expression"),
        ({"keyRegex": ""}, "keyRegex", "non-empty string"),
        ({"keyRegex": ["a"]}, "keyRegex", "non-empty string"),
        ({"sizeGreaterThan": -1}, "sizeGreaterThan", "negative"),
        ({"sizeLessThan": "100"}, "sizeLessThan", "whole number"),
        ({"sizeLessThan": 1.5}, "sizeLessThan", "whole number"),
        ({"sizeGreaterThan": True}, "sizeGreaterThan", "whole number"),
        ({"sizeGreaterThan": 10, "sizeLessThan": 11}, "sizeLessThan", "no whole size"),
        ({"modifiedAfter": "yesterday"}, "modifiedAfter", "neither an ISO-8601 time"),
        ({"modifiedAfter": "2026-13-01T00:00:00Z"}, "modifiedAfter", "neither an ISO-8601 time"),
        ({"modifiedAfter": "2026-01-01T00:00:00"}, "modifiedAfter", "needs a time zone"),
        ({"modifiedBefore": "2026-01-01"}, "modifiedBefore", "needs a time zone"),
        ({"modifiedBefore": "30x"}, "modifiedBefore", "not a usable age"),
        ({"modifiedBefore": "99999999d"}, "modifiedBefore", "not a usable age"),
        ({"modifiedBefore": 30}, "modifiedBefore", "ISO-8601 time with a zone, or an age"),
        ({"modifiedBefore": ""}, "modifiedBefore", "ISO-8601 time with a zone, or an age"),
        (
            {"modifiedAfter": "2026-02-01T00:00:00Z", "modifiedBefore": "2026-01-01T00:00:00Z"},
            "modifiedBefore",
            "leaves no time",
        ),
        ({"modifiedAfter": "30d", "modifiedBefore": "30d"}, "modifiedBefore", "leaves no time"),
        ({"storageClasses": "STANDARD"}, "storageClasses", "non-empty list"),
        ({"storageClasses": [" "]}, "storageClasses", "blank"),
        ({"latestVersionOnly": "true"}, "latestVersionOnly", "true or false"),
        ({"excludeDeleteMarkers": 1}, "excludeDeleteMarkers", "true or false"),
    ],
)
def test_bad_filters_name_the_field_and_the_value(data: dict[str, Any], field: str, why: str) -> None:
    # WHEN a rule's filters are parsed
    with pytest.raises(RuleError) as caught:
        parse_filters("nightly", data)
    # THEN the error names the rule, filters.<key> and the offending value
    error = caught.value
    assert error.rule == "nightly"
    assert error.field == f"filters.{field}"
    assert error.value == data[field]
    assert why in error.why
    assert f"filters.{field} = {data[field]!r}" in str(error)


def test_filters_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(RuleError) as caught:
        parse_filters("nightly", ["keyPrefixes"])  # type: ignore[arg-type]
    assert caught.value.field == "filters"


# -- inventory records -------------------------------------------------------------------------

S3_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass"
COS_SCHEMA = "Appid, Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded"


def inventory(
    files: dict[str, bytes], schema: str, file_format: str = "CSV", md5: dict[str, str] | None = None
) -> tuple[Any, Callable[[str], BinaryIO]]:
    """A parsed manifest.json listing ``files`` (gzip bytes), and an opener serving them."""
    doc = {
        "sourceBucket": "src-bucket",
        "destinationBucket": "arn:aws:s3:::inventory-bucket",
        "fileFormat": file_format,
        "fileSchema": schema,
        "files": [
            {
                "key": name,
                "size": len(data),
                "MD5checksum": (md5 or {}).get(name, hashlib.md5(data).hexdigest()),
            }
            for name, data in files.items()
        ],
    }
    return parse_inventory_manifest(json.dumps(doc).encode()), lambda key: io.BytesIO(files[key])


def gz(*lines: str) -> bytes:
    return gzip.compress("".join(line + "\n" for line in lines).encode())


def test_s3_rows_become_records_with_their_metadata() -> None:
    # GIVEN an S3 all-versions inventory: an old version, the latest, a delete marker
    data = gz(
        'src-bucket,photos/a+b%2Bc.jpg,v1,false,false,100,2026-11-20T03:04:05.000Z,"etag1",STANDARD_IA',
        "src-bucket,photos/a+b%2Bc.jpg,v2,true,false,0,2026-11-21T00:00:00.000Z,etag2,STANDARD",
        "src-bucket,gone.txt,v3,TRUE,True,,2026-11-22T10:00:00.123Z,,",
    )
    manifest, open_file = inventory({"data/1.csv.gz": data}, S3_SCHEMA)
    # WHEN read as records
    records = list(iter_inventory_records(manifest, open_file))
    # THEN each carries its decoded task and typed metadata; empty cells are None
    assert records == [
        InventoryRecord(
            ManifestTask("src-bucket", "photos/a b+c.jpg", "v1"),
            100,
            datetime(2026, 11, 20, 3, 4, 5, tzinfo=UTC),
            "STANDARD_IA",
            False,
            False,
        ),
        InventoryRecord(
            ManifestTask("src-bucket", "photos/a b+c.jpg", "v2"),
            0,
            datetime(2026, 11, 21, tzinfo=UTC),
            "STANDARD",
            True,
            False,
        ),
        InventoryRecord(
            ManifestTask("src-bucket", "gone.txt", "v3"),
            None,
            datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC),
            None,
            True,
            True,
        ),
    ]
    assert all(r.last_modified is None or r.last_modified.tzinfo is UTC for r in records)
    # AND the tasks are exactly those iter_inventory_tasks reads
    assert [r.task for r in records] == list(iter_inventory_tasks(manifest, open_file))


def test_cos_rows_have_no_version_columns() -> None:
    # GIVEN a COS inventory (Appid first, no VersionId, IsLatest or IsDeleteMarker)
    data = gz("1250000000,src-bucket,dir/%E4%BD%A0.txt,42,2026-11-20T03:04:05.000Z,e,STANDARD,false")
    manifest, open_file = inventory({"c.csv.gz": data}, COS_SCHEMA)
    # WHEN read as records
    (only,) = iter_inventory_records(manifest, open_file)
    # THEN the version fields are unknown, so latestVersionOnly / excludeDeleteMarkers drop it
    assert only == InventoryRecord(
        ManifestTask("src-bucket", "dir/你.txt", None),
        42,
        datetime(2026, 11, 20, 3, 4, 5, tzinfo=UTC),
        "STANDARD",
        None,
        None,
    )
    assert not passes({"latestVersionOnly": True}, only)
    assert not passes({"excludeDeleteMarkers": True}, only)
    assert passes({"sizeGreaterThan": 41, "storageClasses": ["STANDARD"]}, only)


def test_records_across_files_keep_manifest_order_and_skip_a_header() -> None:
    first = gz(
        "Bucket,Key,VersionId,IsLatest,IsDeleteMarker,Size,LastModifiedDate,ETag,StorageClass", "b,k1,,,,1,,,"
    )
    second = gz("b,k2,,,,2,,,")
    manifest, open_file = inventory({"1.csv.gz": first, "2.csv.gz": second}, S3_SCHEMA)
    records = list(iter_inventory_records(manifest, open_file))
    assert [(r.task.key, r.size, r.last_modified, r.is_latest) for r in records] == [
        ("k1", 1, None, None),
        ("k2", 2, None, None),
    ]


def test_an_offsetless_time_is_read_as_utc() -> None:
    manifest, open_file = inventory({"1.csv.gz": gz("b,k,,,,1,2026-11-20T03:04:05,,")}, S3_SCHEMA)
    (only,) = iter_inventory_records(manifest, open_file)
    assert only.last_modified == datetime(2026, 11, 20, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ("b,k,,,,12.5,,,", "Size '12.5'"),
        ("b,k,,,,-1,,,", "Size '-1'"),
        ("b,k,,,,١٢,,,", "Size"),
        ("b,k,,,,1,20 Nov 2026,,", "LastModifiedDate '20 Nov 2026'"),
        ("b,k,,yes,,1,,,", "IsLatest 'yes'"),
        ("b,k,,,1,1,,,", "IsDeleteMarker '1'"),
        ("b,k,,,,1,,", "has 8 column(s)"),
    ],
)
def test_an_unreadable_metadata_cell_fails_the_manifest_naming_the_row(row: str, why: str) -> None:
    # GIVEN a valid first row and a bad second one
    manifest, open_file = inventory({"data/x.csv.gz": gz("b,ok,,,,1,,,", row)}, S3_SCHEMA)
    # WHEN read as records
    with pytest.raises(ManifestError) as caught:
        list(iter_inventory_records(manifest, open_file))
    # THEN the manifest is malformed, and the message names the file, the row and the cell
    assert caught.value.code == MALFORMED
    assert "inventory file data/x.csv.gz, row 2" in str(caught.value)
    assert why in str(caught.value)


def test_a_checksum_mismatch_is_raised_after_the_files_records() -> None:
    # GIVEN a data file whose MD5 is not the listed one
    manifest, open_file = inventory({"x.csv.gz": gz("b,k,,,,1,,,")}, S3_SCHEMA, md5={"x.csv.gz": "0" * 32})
    records = iter_inventory_records(manifest, open_file)
    # THEN its record is yielded, and the mismatch follows: consumers must read to the end
    assert next(records).task.key == "k"
    with pytest.raises(ManifestError) as caught:
        next(records)
    assert caught.value.code == CHECKSUM_MISMATCH


def test_a_bad_cell_in_a_corrupt_file_is_blamed_on_the_checksum() -> None:
    manifest, open_file = inventory({"x.csv.gz": gz("b,k,,,,nan,,,")}, S3_SCHEMA, md5={"x.csv.gz": "0" * 32})
    with pytest.raises(ManifestError) as caught:
        list(iter_inventory_records(manifest, open_file))
    assert caught.value.code == CHECKSUM_MISMATCH


@pytest.mark.parametrize("file_format", ["ORC", "Parquet"])
def test_columnar_inventories_have_no_records(file_format: str) -> None:
    # GIVEN an ORC or Parquet inventory, whose files must not even be opened
    def never(key: str) -> BinaryIO:
        raise AssertionError(f"opened {key}")

    manifest, _ = inventory({"x.orc": b""}, S3_SCHEMA, file_format=file_format)
    # THEN records are refused as an unsupported format, naming it
    with pytest.raises(ManifestError, match=re.escape(file_format)) as caught:
        list(iter_inventory_records(manifest, never))
    assert caught.value.code == FORMAT_UNSUPPORTED


def test_a_metadata_column_named_twice_is_malformed() -> None:
    manifest, open_file = inventory({"x.csv.gz": gz("b,k,1,2")}, "Bucket, Key, Size, size")
    with pytest.raises(ManifestError, match="'size' more than once"):
        list(iter_inventory_records(manifest, open_file))
