"""How long the jobs API takes to refuse each case of the hostile-input corpus.

Every case of tests/integration/hostile_corpus.py is sent ROUNDS times over HTTP to `batchops
serve` (SQLite store) and through the jobs API Lambda handler (DynamoDB on a moto server on
127.0.0.1), timed from sending to the whole answer read. Prints JSON and a Markdown table: the
slowest cases and the median and maximum per transport. Correctness is the tests' job
(tests/integration/test_hostile_inputs.py); this only measures. Run with `make bench`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

ROUNDS = 5
SLOWEST = 5


def timed(send: Callable[[], object]) -> float:
    start = time.perf_counter()
    send()
    return (time.perf_counter() - start) * 1000


def main() -> int:
    from moto.server import ThreadedMotoServer

    from batchops.jobs.service import JobService
    from batchops.store.sqlite import SQLiteJobStore
    from tests.conftest import create_jobs_table, run_server
    from tests.integration.deployed_harness import load
    from tests.integration.hostile_corpus import CORPUS, Traps
    from tests.integration.test_hostile_inputs import gateway_event, over_http
    from tests.integration.test_jobs_api_lambda import FakeContext

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    table = create_jobs_table(boto3.client("dynamodb", endpoint_url=endpoint), "jobs-bench-hostile")
    os.environ.update({"JOBS_TABLE": table, "AWS_ENDPOINT_URL_DYNAMODB": endpoint})
    handler = load("jobs_api_bench", "functions/jobs_api/app.py")
    # A listener that is never accepted and a file that does not exist: the tests watch them.
    trap_socket = socket.socket()
    trap_socket.bind(("127.0.0.1", 0))
    trap_socket.listen()
    timings: dict[str, dict[str, list[float]]] = {"serve": {}, "lambda": {}}
    with tempfile.TemporaryDirectory() as tmp:
        traps = Traps(Path(tmp) / "secret.txt", trap_socket.getsockname()[1])
        store = SQLiteJobStore(Path(tmp) / "jobs.db")
        for case in CORPUS:
            case.body_for(traps)  # bodies built once (the gzip bomb takes a second), not timed
        server = run_server(JobService(store, max_active_jobs=10))
        url = next(server).url
        # Powertools prints each invocation's metrics (EMF) to stdout; the report is printed below.
        with contextlib.redirect_stdout(io.StringIO()):
            for _ in range(ROUNDS):
                for case in CORPUS:
                    if case.serve:
                        ms = timed(functools.partial(over_http, url, case, traps))
                        timings["serve"].setdefault(case.name, []).append(ms)
                    if case.gateway:
                        payload = gateway_event(case, traps, f"bench-{uuid.uuid4().hex[:8]}")
                        ms = timed(functools.partial(handler.lambda_handler, payload, FakeContext()))
                        timings["lambda"].setdefault(case.name, []).append(ms)
        next(server, None)  # the generator stops the server
        store.close()
    trap_socket.close()
    moto.stop()
    report = summarise(timings)
    print(json.dumps(report, indent=2))
    print(markdown(report))
    return 0


def summarise(timings: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    report: dict[str, Any] = {"rounds": ROUNDS}
    for transport, cases in timings.items():
        worst = {name: max(values) for name, values in cases.items()}
        every = [value for values in cases.values() for value in values]
        report[transport] = {
            "cases": len(cases),
            "median_ms": round(statistics.median(every), 2),
            "max_ms": round(max(every), 2),
            "slowest": [
                {"case": name, "max_ms": round(ms, 2), "median_ms": round(statistics.median(cases[name]), 2)}
                for name, ms in sorted(worst.items(), key=lambda item: -item[1])[:SLOWEST]
            ],
        }
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = ["| transport | cases | median ms | max ms | slowest case (max ms) |", "|---|---|---|---|---|"]
    for transport in ("serve", "lambda"):
        row = report[transport]
        slowest = row["slowest"][0]
        lines.append(
            f"| {transport} | {row['cases']} | {row['median_ms']} | {row['max_ms']} | "
            f"{slowest['case']} ({slowest['max_ms']}) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
