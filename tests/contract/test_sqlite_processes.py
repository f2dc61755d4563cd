"""The SQLite store shared by several processes (a `batchops serve` and CLI runs, or two servers)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from batchops.store.base import DuplicateTokenError, VersionConflictError
from batchops.store.sqlite import SQLiteJobStore
from tests.contract.test_job_store import APPID, record


def _create(args: tuple[str, int]) -> str:
    path, n = args
    store = SQLiteJobStore(path)
    try:
        store.insert_job(record(n, token="same"), max_active=100)
        return "created"
    except DuplicateTokenError as exc:
        return f"duplicate:{exc.existing_job_id}"
    finally:
        store.close()


def _cancel(args: tuple[str, int]) -> str:
    path, _ = args
    store = SQLiteJobStore(path)
    try:
        job = store.get_job(APPID, "job-0001")
        assert job is not None
        from dataclasses import replace

        store.replace_job(job, replace(job, status="Cancelled", active=False, version=job.version + 1))
        return "won"
    except VersionConflictError:
        return "lost"
    finally:
        store.close()


def test_processes_creating_with_one_token_make_one_job(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.db")
    SQLiteJobStore(path).close()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_create, [(path, n) for n in range(1, 9)])
    assert results.count("created") == 1
    winner = results.index("created") + 1
    assert set(results) - {"created"} == {f"duplicate:job-{winner:04d}"}
    store = SQLiteJobStore(path)
    assert len(store.list_jobs(APPID, None, 100, None).records) == 1
    store.close()


def test_processes_racing_one_transition_have_one_winner(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.db")
    store = SQLiteJobStore(path)
    store.insert_job(record(1), max_active=100)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_cancel, [(path, n) for n in range(8)])
    # Each process reads then writes; whoever read version 1 after the first write still loses,
    # and later readers see version 2 and win against it in turn: versions only ever go up by one.
    final = store.get_job(APPID, "job-0001")
    assert final is not None
    assert final.version == 1 + results.count("won")
    store.close()
