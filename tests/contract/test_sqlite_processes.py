"""The SQLite store shared by several processes (a `batchops serve` and CLI runs, or two servers)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.synchronize import Barrier
from pathlib import Path

from batchops.store.base import DuplicateTokenError, VersionConflictError
from batchops.store.sqlite import SQLiteJobStore
from tests.contract.test_job_store import APPID, record

PROCESSES = 6


def _create(path: str, n: int, barrier: Barrier, results: multiprocessing.Queue[str]) -> None:
    store = SQLiteJobStore(path)
    barrier.wait()
    try:
        store.insert_job(record(n, token="same"), max_active=100)
        results.put("created")
    except DuplicateTokenError as exc:
        results.put(f"duplicate:{exc.existing_job_id}")
    finally:
        store.close()


def _cancel(path: str, n: int, barrier: Barrier, results: multiprocessing.Queue[str]) -> None:
    store = SQLiteJobStore(path)
    job = store.get_job(APPID, "job-0001")  # every process reads version 1 ...
    assert job is not None
    barrier.wait()  # ... then all write at once
    try:
        store.replace_job(job, replace(job, status=f"Cancelled-{n}", active=False, version=job.version + 1))
        results.put(f"won:{n}")
    except VersionConflictError:
        results.put("lost")
    finally:
        store.close()


def run_processes(target: Callable[..., None], path: str) -> list[str]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results: multiprocessing.Queue[str] = context.Queue()
    processes = [
        context.Process(target=target, args=(path, n, barrier, results)) for n in range(1, PROCESSES + 1)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return [results.get(timeout=5) for _ in processes]


def test_processes_creating_with_one_token_make_one_job(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.db")
    SQLiteJobStore(path).close()
    results = run_processes(_create, path)
    assert results.count("created") == 1
    created = [r for r in results if r != "created"]
    assert len(set(created)) == 1 and created[0].startswith("duplicate:job-")
    store = SQLiteJobStore(path)
    assert len(store.list_jobs(APPID, None, 100, None).records) == 1
    store.close()


def test_processes_racing_one_transition_have_exactly_one_winner(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.db")
    store = SQLiteJobStore(path)
    store.insert_job(record(1), max_active=100)
    results = run_processes(_cancel, path)
    winners = [r for r in results if r.startswith("won:")]
    assert len(winners) == 1
    final = store.get_job(APPID, "job-0001")
    assert final is not None
    assert (final.version, final.status) == (2, f"Cancelled-{winners[0].split(':')[1]}")
    store.close()
