"""Which client the engine's S3 calls go through: the lean one unless BATCHOPS_S3_CLIENT=boto3,
whether the job's client is the shared one (embedded) or an assumed role's (deployed)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from batchops.engine.job_clients import LeanClients, SharedClients
from batchops.jobs.model import Job
from batchops.s3fast import LeanS3Client
from tests.conftest import new_bucket
from tests.faults import count_only, inject
from tests.integration.jobs_harness import Service, csv_manifest, engine_settings, put_manifest, request


@pytest.mark.parametrize(("kind", "lean"), [("lean", True), ("boto3", False)])
def test_the_engines_copies_go_through_the_configured_client(
    make_service: Callable[..., Service], kind: str, lean: bool
) -> None:
    # GIVEN an engine configured for one S3 client, and a job of 5 copies
    svc = make_service(engine_settings(s3_client=kind))
    copies = inject(svc.s3, "CopyObject", count_only())
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    for n in range(5):
        svc.s3.put_object(Bucket=src, Key=f"k{n}", Body=b"x")
    etag = put_manifest(svc.s3, src, "m.csv", csv_manifest([(src, f"k{n}") for n in range(5)]))
    copy = f"<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"
    # WHEN it runs
    job = svc.wait(svc.create(request(src, "m.csv", etag, copy, src)), "Complete")
    # THEN every copy was made by that client
    assert job.findtext("ProgressSummary/NumberOfTasksSucceeded") == "5"
    agents = [r.headers["User-Agent"] for r in copies.seen]
    assert len(agents) == 5
    assert all((b"batchops-s3fast" in agent) is lean for agent in agents)


class _Renewing:
    """A job client source that hands out a new client now and then (as assumed roles do)."""

    def __init__(self, clients: list[object]) -> None:
        self.clients = clients
        self.current = 0

    def s3_for(self, job: Job) -> object:
        return self.clients[self.current]


def test_one_lean_client_per_job_client() -> None:
    # GIVEN job clients that get renewed
    import boto3

    first, second = (boto3.client("s3", region_name="us-east-1") for _ in range(2))
    source = _Renewing([first, second])
    clients = LeanClients(source)  # type: ignore[arg-type]
    job: Job = None  # type: ignore[assignment]  # the source ignores it
    # WHEN the same client is asked for twice, then a renewed one
    a, b = clients.s3_for(job), clients.s3_for(job)
    source.current = 1
    c = clients.s3_for(job)
    # THEN the lean front is reused while its client is, and follows a renewal
    assert a is b and isinstance(a, LeanS3Client) and a.wrapped is first
    assert isinstance(c, LeanS3Client) and c.wrapped is second
    assert isinstance(LeanClients(SharedClients(first)).s3_for(job), LeanS3Client)
