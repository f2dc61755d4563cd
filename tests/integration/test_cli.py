"""`batchops serve` and `batchops jobs ...` as a user runs them: real processes, real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from tests.conftest import SEED_XML, free_port

BATCHOPS = str(Path(sys.executable).parent / "batchops")


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BATCHOPS, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """`batchops serve` in its own process, on a free port, with BATCHOPS_DB in a temporary directory."""
    port = free_port()
    env = {
        **os.environ,
        "BATCHOPS_DB": str(tmp_path / "state" / "jobs.db"),
        "BATCHOPS_ENDPOINT": f"http://127.0.0.1:{port}",
        **getattr(request, "param", {}),
    }
    server = subprocess.Popen(
        [BATCHOPS, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-workers"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stderr is not None
    banner = server.stderr.readline()
    assert f"http://127.0.0.1:{port}" in banner, banner
    try:
        yield env
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
        server.stderr.close()
    assert (tmp_path / "state" / "jobs.db").exists()


def test_cli_drives_the_api_over_http(served: dict[str, str], tmp_path: Path) -> None:
    # WHEN the seed request is created from a file THEN the JobId is printed alone
    created = run("jobs", "create", "--xml", str(SEED_XML), env=served)
    assert created.returncode == 0, created.stderr
    job_id = created.stdout.strip()
    assert len(job_id) == 36

    # WHEN created again THEN exit 1 and the COS error, naming the job
    again = run("jobs", "create", "--xml", str(SEED_XML), env=served)
    assert again.returncode == 1
    assert "InvalidRequest (HTTP 400): Duplicate request." in again.stderr
    assert f"[/jobs/{job_id}]" in again.stderr

    listed = run("jobs", "list", env=served)
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].split()[:4] == ["JobId", "Status", "Priority", "Operation"]
    assert f"{job_id}  New" in listed.stdout

    described = run("jobs", "describe", job_id, env=served)
    assert "Status                New" in described.stdout
    assert "COSPutObjectCopy" in described.stdout

    raw = run("jobs", "describe", job_id, "--xml", env=served)
    assert etree.fromstring(raw.stdout.encode()).findtext("Job/JobId") == job_id

    assert run("jobs", "priority", job_id, "7", env=served).stdout.strip() == f"{job_id}  Priority 7"

    confirm = run("jobs", "confirm", job_id, env=served)
    assert confirm.returncode == 1
    assert "Only a Suspended job can be confirmed" in confirm.stderr

    cancelled = run("jobs", "cancel", job_id, "--reason", "not today", env=served)
    assert cancelled.stdout.strip() == f"{job_id}  Cancelled  (not today)"

    assert run("jobs", "delete", job_id, env=served).returncode == 0
    missing = run("jobs", "describe", job_id, env=served)
    assert missing.returncode == 1
    assert "NoSuchJob (HTTP 404)" in missing.stderr


def test_the_store_outlives_the_server(tmp_path: Path) -> None:
    # GIVEN a job created through one server process
    port = free_port()
    env = {
        **os.environ,
        "BATCHOPS_DB": str(tmp_path / "jobs.db"),
        "BATCHOPS_ENDPOINT": f"http://127.0.0.1:{port}",
    }
    job_ids: list[str] = []
    for _ in range(2):
        server = subprocess.Popen(
            [BATCHOPS, "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
        )
        assert server.stderr is not None
        server.stderr.readline()
        if not job_ids:
            job_ids.append(run("jobs", "create", "--xml", str(SEED_XML), env=env).stdout.strip())
        # WHEN the server restarts THEN the job is still there
        assert job_ids[0] in run("jobs", "list", env=env).stdout
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
        server.stderr.close()


def test_unreachable_service_and_bad_files(tmp_path: Path) -> None:
    env = {**os.environ, "BATCHOPS_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    down = run("jobs", "list", env=env)
    assert down.returncode == 3
    assert "cannot reach the jobs API" in down.stderr
    missing = run("jobs", "create", "--xml", str(tmp_path / "nope.xml"), env=env)
    assert missing.returncode == 2
    bad = run("jobs", "list", env={**env, "BATCHOPS_MAX_ACTIVE_JOBS": "lots"})
    assert bad.returncode == 2
    assert "BATCHOPS_MAX_ACTIVE_JOBS must be a positive integer, not 'lots'" in bad.stderr


def test_demo_runs_and_leaves_nothing_running() -> None:
    demo = subprocess.run([BATCHOPS, "demo"], capture_output=True, text=True, timeout=120, check=False)
    assert demo.returncode == 0, demo.stderr
    assert "the same notification again: already submitted" in demo.stdout
    assert "Tasks                 1995 succeeded, 5 failed, 2000 total" in demo.stdout
    assert "Status                Complete" in demo.stdout
    assert "failed: s3://demo-backup/batchops-reports/job-" in demo.stdout
    assert "the API and the workers are stopped" in demo.stdout


@pytest.mark.parametrize("served", [{"BATCHOPS_MAX_ACTIVE_JOBS": "1"}], indirect=True)
def test_serve_takes_its_job_limit_from_the_environment(served: dict[str, str], tmp_path: Path) -> None:
    assert run("jobs", "create", "--xml", str(SEED_XML), env=served).returncode == 0
    second = tmp_path / "second.xml"
    second.write_bytes(SEED_XML.read_bytes().replace(b"184ce261", b"99999999"))
    refused = run("jobs", "create", "--xml", str(second), env=served)
    assert refused.returncode == 1
    assert "TooManyJobs (HTTP 500)" in refused.stderr


@pytest.mark.parametrize("served", [{"BATCHOPS_CREDENTIALS": '{"AKIDcli": "cli-secret"}'}], indirect=True)
def test_serve_with_credentials_takes_signed_requests_only(served: dict[str, str]) -> None:
    unsigned = run("jobs", "list", env=served)
    assert unsigned.returncode == 1
    assert "AccessDenied (HTTP 403)" in unsigned.stderr
    signed_env = {**served, "BATCHOPS_SECRET_ID": "AKIDcli", "BATCHOPS_SECRET_KEY": "cli-secret"}
    created = run("jobs", "create", "--xml", str(SEED_XML), env=signed_env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() in run("jobs", "list", env=signed_env).stdout
    # a repeated parameter is signed as the server reads it (its first value)
    filtered = run("jobs", "list", "--status", "New", "--status", "Active", env=signed_env)
    assert filtered.returncode == 0, filtered.stderr
