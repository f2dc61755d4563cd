"""Where a delete job's CPU goes, per key, phase by phase (S4's batchops run, in one process).

``python -m tests.bench.delete_phases [KEYS]`` starts the stub (0 ms), writes S4's manifest,
creates the job as S4 does and runs ``batchops run --until-idle`` (one worker) in this process,
timing the engine's phases and steps with the CPU clock of the thread running them (the stub's
CPU is its own). Prints µs of CPU per key for each, and the process's total. Not part of
``make bench``: it is for reading S4's batchops figure against the bare DeleteObjects loop, which
does only the S3 step.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from batchops.cli.main import main
from tests.bench import batchops_job
from tests.bench.measure import StubServer, peer_env
from tests.bench.peers import PREFIX

STEPS: list[tuple[str, str, str]] = [
    # (module or class path, attribute, label)
    ("batchops.engine.phases:Engine", "prepare", "prepare (read, parse, plan the manifest)"),
    ("batchops.engine.phases:Engine", "run_chunk", "run chunks (all)"),
    ("batchops.engine.phases", "run_tasks", "  DeleteObjects (serialize, sign, send, parse)"),
    ("batchops.engine.phases", "decode_chunk", "  decode chunks (run and report)"),
    ("batchops.engine.phases", "encode_outcomes", "  encode outcomes"),
    ("batchops.engine.phases:JobService", "get", "  read the job"),
    ("batchops.store.sqlite:SQLiteJobStore", "record_segment", "  record segments"),
    ("batchops.engine.phases:Engine", "finalize", "finalize (all)"),
    ("batchops.engine.phases", "write_report_rows", "  report rows"),
]


def _resolve(path: str) -> Any:
    module, _, attribute = path.partition(":")
    found: Any = __import__(module, fromlist=["_"])
    return getattr(found, attribute) if attribute else found


def measure(keys: int) -> dict[str, float]:
    spent: dict[str, float] = dict.fromkeys((label for _, _, label in STEPS), 0.0)

    def timed(label: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return call(*args, **kwargs)
            finally:
                spent[label] += time.thread_time() - started

        return wrapper

    with tempfile.TemporaryDirectory() as work:
        objects = Path(work) / "objects"
        objects.mkdir()
        stub = StubServer(objects)
        try:
            manifest_key, etag = batchops_job.write_manifest(objects, keys, PREFIX)
            db = Path(work) / "jobs.db"
            job_id = batchops_job.create_job(db, "delete", manifest_key, etag)
            os.environ.update(
                peer_env(stub.endpoint, Path(work), BATCHOPS_WORKERS="1", BATCHOPS_TASK_CONCURRENCY="1")
            )
            for path, attribute, label in STEPS:
                owner = _resolve(path)
                if hasattr(owner, attribute):  # (an older tree may lack a step: it shows 0)
                    setattr(owner, attribute, timed(label, getattr(owner, attribute)))
            started = time.process_time()
            main(["run", "--until-idle", "--db", str(db)])
            total = time.process_time() - started
            s3 = boto3.client(
                "s3",
                endpoint_url=stub.endpoint,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            )
            problem = batchops_job.check_job(db, job_id, keys, s3)
            if problem:
                raise SystemExit(f"the job did not check out: {problem}")
        finally:
            stub.stop()
    figures = {label: spent[label] / keys * 1e6 for _, _, label in STEPS}
    figures["process total"] = total / keys * 1e6
    return figures


if __name__ == "__main__":
    print(
        json.dumps(
            {k: round(v, 2) for k, v in measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000).items()},
            indent=1,
            ensure_ascii=False,
        )
    )
