"""The report checkpoint a finalize step stores in the ledger: it reads back exactly, names each
file by the key the writer gives it, and anything else is refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchops.report.checkpoint import (
    START,
    PendingUpload,
    ReportCheckpoint,
    decode_report_checkpoint,
    encode_report_checkpoint,
)
from batchops.report.writer import WrittenFile, results_key

JOB_ID = "53dc6228-c50b-46f7-8ad7-65e7159f1aae"
MD5 = "83b1c4cbe93fc893f54053697e10fd6e"


def written(status: str, number: int, prefix: str | None = "reports") -> WrittenFile:
    return WrittenFile(status, number, results_key(prefix, JOB_ID, status, number), MD5)


def test_a_checkpoint_reads_back_as_written() -> None:
    # GIVEN a report stopped at segment (17, 400), three files written, one upload begun
    checkpoint = ReportCheckpoint(
        next_index=17,
        next_start=400,
        succeeded=16_390,
        failed=10,
        files=(written("succeeded", 0), written("failed", 0), written("succeeded", 1)),
        uploads=(PendingUpload("succeeded", 2, "upload-id/with+odd=chars"),),
    )
    # WHEN it is encoded and decoded THEN it is the same, keys included
    text = encode_report_checkpoint(checkpoint)
    assert decode_report_checkpoint(text, "reports", JOB_ID) == checkpoint
    # AND it holds no key (they follow from the prefix), so it stays small
    assert "reports/job-" not in text and len(text) < 300


def test_the_start_reads_back_as_the_start() -> None:
    assert decode_report_checkpoint(encode_report_checkpoint(START), None, JOB_ID) == START


@st.composite
def checkpoints(draw: st.DrawFn) -> tuple[ReportCheckpoint, str | None]:
    prefix = draw(st.one_of(st.none(), st.text(max_size=30)))
    statuses = st.sampled_from(["succeeded", "failed"])
    files = draw(st.lists(st.tuples(statuses, st.integers(0, 10**4)), unique=True))
    uploads = draw(st.lists(st.tuples(statuses, st.integers(0, 10**4), st.text(min_size=1))))
    checkpoint = ReportCheckpoint(
        draw(st.integers(0, 10**7)),
        draw(st.integers(0, 999)),
        draw(st.integers(0, 10**10)),
        draw(st.integers(0, 10**10)),
        tuple(written(status, number, prefix) for status, number in files),
        tuple(PendingUpload(*upload) for upload in uploads),
    )
    return checkpoint, prefix


@given(checkpoints())
def test_any_checkpoint_reads_back_as_written(drawn: tuple[ReportCheckpoint, str | None]) -> None:
    checkpoint, prefix = drawn
    assert decode_report_checkpoint(encode_report_checkpoint(checkpoint), prefix, JOB_ID) == checkpoint


GOOD = json.loads(encode_report_checkpoint(ReportCheckpoint(1, 2, 3, 4, (written("failed", 0),))))


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"next": [1]},
        {"next": [1, -2]},
        {"next": [1, 2.5]},
        {"next": [1, True]},
        {"counts": "3,4"},
        {"files": [["skipped", 0, MD5]]},
        {"files": [["failed", 0, "not-an-md5"]]},
        {"files": [["failed", 0, MD5.upper()]]},
        {"files": [["failed", 0, MD5], ["failed", 0, MD5]]},
        {"files": [["failed", -1, MD5]]},
        {"uploads": [["failed", 0, ""]]},
        {"uploads": [["failed", 0]]},
    ],
)
def test_anything_else_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="not a report checkpoint"):
        decode_report_checkpoint(json.dumps({**GOOD, **change}), "reports", JOB_ID)


@pytest.mark.parametrize("text", ["", "[]", "null", "{", '{"v":1}', "0:12:3:4"])
def test_text_that_is_no_checkpoint_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a report checkpoint"):
        decode_report_checkpoint(text, "reports", JOB_ID)
