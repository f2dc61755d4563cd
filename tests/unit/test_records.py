"""A job survives the trip through a store record unchanged, whatever its operation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from batchops.api.create_job import parse_create_job
from batchops.jobs.model import Job, JobFailure, ProgressSummary
from batchops.jobs.records import job_to_record, record_to_job
from batchops.jobs.status import JobStatus
from tests.conftest import SEED_XML
from tests.unit.test_create_job import FULL_COPY, operation


@pytest.mark.parametrize(
    "op",
    [
        FULL_COPY,
        "<COSInitiateRestoreObject><ExpirationInDays>7</ExpirationInDays><JobTier>Bulk</JobTier></COSInitiateRestoreObject>",
        "<COSDeleteObject/>",
    ],
)
def test_job_round_trips_through_a_record(op: str) -> None:
    root = etree.fromstring(SEED_XML.read_bytes())
    operation(op)(root)
    spec = parse_create_job(etree.tostring(root))
    job = Job(
        job_id="53dc6228-c50b-46f7-8ad7-65e7159f1aae",
        appid="1250000000",
        spec=spec,
        status=JobStatus.FAILED,
        creation_time=datetime(2019, 12, 19, 18, 0, 30, 123000, tzinfo=UTC),
        priority=77,
        status_update_reason="too many failures",
        termination_date=datetime(2019, 12, 19, 18, 0, 42, tzinfo=UTC),
        failure_reasons=(JobFailure("TaskFailureRate", "more than 50% of 1,000 tasks failed"),),
        progress=ProgressSummary(total=2000, succeeded=900, failed=1100, elapsed_active_seconds=12),
    )
    record = job_to_record(job, version=3)
    assert (record.status, record.active, record.version, record.priority) == ("Failed", False, 3, 77)
    assert record_to_job(record) == job
