"""Client CPU per S3 call, boto3 vs the lean client (batchops.s3fast), on a loopback server of its own.

The server is a subprocess (its CPU is not the client's): HTTP/1.1 keep-alive on 127.0.0.1,
canned but well-formed answers for CopyObject, HeadObject, DeleteObject, DeleteObjects (one
Deleted entry per key sent) and RestoreObject, optionally after a delay (``--latency-ms``,
a sleep, so no CPU). The client side is this process; CPU is ``time.process_time()`` (all of
its threads), wall time ``time.perf_counter()``.

Two measurements, the clients interleaved and each repeated (median reported):

- sequential: one call at a time, µs of CPU per call, per operation, and per ``copy_task``
  (the executor's whole copy of one object: ops code plus the S3 call);
- concurrent: ``copy_task`` from ``--threads`` threads (64 and 256) against a server answering
  after ``--latency-ms`` (20 ms), calls/s and µs of CPU per call: the latency-bound regime of
  performance.md §3, where boto3 saturates near 1,000 calls/s and s5cmd reached 2,840 ops/s at
  572 µs/op with 256 workers.

Run: ``make bench`` or ``PYTHONPATH=layers/batchops:. .venv/bin/python -m tests.bench.s3_client_cpu``.
Prints a JSON document, then a Markdown table. Timings on a shared machine are noisy: read
the lean/boto3 ratios, which are measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

_COPY_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>"
    b"</CopyObjectResult>"
)
_COMMON = b"x-amz-request-id: 4442587FB7D0A2F9\r\nx-amz-id-2: Zm9vYmFy\r\nServer: AmazonS3\r\n"
_KEY = re.compile(rb"<Key>(.*?)</Key>")


def _answer(method: bytes, target: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
    if method == b"PUT" and b"x-amz-copy-source" in headers:
        return _reply(200, b"Content-Type: application/xml\r\n", _COPY_BODY)
    if method == b"HEAD":
        extra = (
            b'Content-Type: text/plain\r\nContent-Length: 1024\r\nETag: "9b2cf535f27731c974343645a3985328"\r\n'
            b"Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\nx-amz-meta-team: data\r\n"
        )
        return b"HTTP/1.1 200 OK\r\n" + _COMMON + extra + b"\r\n"
    if method == b"DELETE":
        return _reply(204, b"", b"")
    if method == b"POST" and target.endswith(b"?delete"):
        deleted = b"".join(b"<Deleted><Key>" + key + b"</Key></Deleted>" for key in _KEY.findall(body))
        return _reply(
            200,
            b"Content-Type: application/xml\r\n",
            b'<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            + deleted
            + b"</DeleteResult>",
        )
    if method == b"POST" and b"?restore" in target:
        return _reply(202, b"", b"")
    return _reply(400, b"Content-Type: application/xml\r\n", b"<Error><Code>InvalidRequest</Code></Error>")


def _reply(status: int, headers: bytes, body: bytes) -> bytes:
    reason = {200: b"OK", 202: b"Accepted", 204: b"No Content", 400: b"Bad Request"}[status]
    length = b"" if status == 204 else b"Content-Length: %d\r\n" % len(body)
    return b"HTTP/1.1 %d %s\r\n" % (status, reason) + _COMMON + headers + length + b"\r\n" + body


def _serve_connection(conn: socket.socket, delay: float) -> None:
    buffer = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, target, _ = lines[0].split(b" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            while len(buffer) < length:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            body, buffer = buffer[:length], buffer[length:]
            if delay:
                time.sleep(delay)
            conn.sendall(_answer(method, target, headers, body))


def serve(port_file: str, delay_ms: float) -> None:
    """The server process: accept forever, a thread per connection (keep-alive)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    Path(port_file).write_text(str(listener.getsockname()[1]))
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve_connection, args=(conn, delay_ms / 1000), daemon=True).start()


class Server:
    def __init__(self, delay_ms: float, tmpdir: str) -> None:
        port_file = Path(tmpdir) / f"port-{delay_ms}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.s3_client_cpu", "--serve", str(port_file), str(delay_ms)],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the loopback server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text()}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def clients(url: str, pool: int) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    from batchops.clients import s3_config
    from batchops.s3fast import lean_s3_client

    def boto3_client() -> Any:
        config = s3_config(pool, "path").merge(Config(region_name="us-east-1"))
        return boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id="AKIDBENCH",
            aws_secret_access_key="secret",
            config=config,
        )

    return {"boto3": boto3_client(), "lean": lean_s3_client(boto3_client())}


CALLS: dict[str, Callable[[Any, int], Any]] = {
    "copy_object": lambda s3, n: s3.copy_object(
        Bucket="dst",
        Key=f"dir/key-{n}.txt",
        CopySource={"Bucket": "src", "Key": f"dir/key-{n}.txt"},
        MetadataDirective="COPY",
        TaggingDirective="COPY",
    ),
    "head_object": lambda s3, n: s3.head_object(Bucket="src", Key=f"dir/key-{n}.txt"),
    "delete_object": lambda s3, n: s3.delete_object(Bucket="src", Key=f"dir/key-{n}.txt"),
    "restore_object": lambda s3, n: s3.restore_object(
        Bucket="src",
        Key=f"dir/key-{n}.txt",
        RestoreRequest={"Days": 7, "GlacierJobParameters": {"Tier": "Bulk"}},
    ),
}


def copy_task_call() -> Callable[[Any, int], Any]:
    """The executor's whole copy of one object (ops.copy.copy_task), not just the S3 call."""
    from batchops.jobs.model import PutObjectCopy
    from batchops.ops.copy import CopySettings, copy_task

    op, settings = PutObjectCopy("arn:aws:s3:::dst"), CopySettings()
    return lambda s3, n: copy_task(s3, "src", f"dir/key-{n}.txt", None, op, settings=settings)


def delete_objects_per_key(s3: Any, n: int) -> Any:
    keys = [{"Key": f"dir/key-{n}-{i:04d}.txt"} for i in range(1000)]
    return s3.delete_objects(Bucket="src", Delete={"Objects": keys, "Quiet": False})


def sequential(s3: Any, call: Callable[[Any, int], Any], n: int) -> float:
    for i in range(min(200, n)):
        call(s3, i)
    cpu = time.process_time()
    for i in range(n):
        call(s3, i)
    return (time.process_time() - cpu) / n * 1e6


def concurrent(s3: Any, threads: int, n: int) -> tuple[float, float]:
    """(calls/s, CPU µs per call) of copy_task from ``threads`` threads."""
    copy = copy_task_call()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda i: copy(s3, i), range(threads * 4)))  # warm every connection
        cpu, wall = time.process_time(), time.perf_counter()
        list(pool.map(lambda i: copy(s3, i), range(n)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return n / wall, cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--serve", nargs=2, metavar=("PORT_FILE", "DELAY_MS"), help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per operation and client")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="64,256", help="comma-separated thread counts")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrent-calls", type=int, default=6000)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], float(args.serve[1]))
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results: dict[str, Any] = {
            "sequential_us_per_call": sequential_table(tmp, args.calls, args.repeats),
            "concurrent": [
                concurrent_row(tmp, int(threads), args.latency_ms, args.concurrent_calls, args.repeats)
                for threads in args.threads.split(",")
            ],
        }
    print(json.dumps(results, indent=2))
    print("\n| sequential, 0 ms | boto3 µs/call | lean µs/call | lean/boto3 |\n|---|---|---|---|")
    for op, row in results["sequential_us_per_call"].items():
        print(f"| {op} | {row['boto3']} | {row['lean']} | {row['lean/boto3']} |")
    print(
        f"\n| copy_task, {args.latency_ms:g} ms latency | ideal calls/s | boto3 calls/s · µs/call "
        "| lean calls/s · µs/call | lean/boto3 calls/s · µs/call |\n|---|---|---|---|---|"
    )
    for c in results["concurrent"]:
        ratio = c["lean/boto3"]
        print(
            f"| {c['threads']} threads | {c['ideal_calls_per_s']} "
            f"| {c['boto3']['calls_per_s']} · {c['boto3']['cpu_us_per_call']} "
            f"| {c['lean']['calls_per_s']} · {c['lean']['cpu_us_per_call']} "
            f"| {ratio['calls_per_s']} · {ratio['cpu_us_per_call']} |"
        )


def sequential_table(tmp: str, calls: int, repeats: int) -> dict[str, dict[str, float]]:
    server = Server(0, tmp)
    try:
        s3 = clients(server.url, 16)
        measures: dict[str, dict[str, list[float]]] = {}
        operations = [
            *CALLS.items(),
            ("delete_objects (per key)", delete_objects_per_key),
            ("copy_task (ops.copy, one object)", copy_task_call()),
        ]
        for _ in range(repeats):
            for op, call in operations:
                per_key = "per key" in op
                for name, client in s3.items():
                    per_call = sequential(client, call, max(4, calls // 200) if per_key else calls)
                    measures.setdefault(op, {}).setdefault(name, []).append(
                        per_call / 1000 if per_key else per_call
                    )
    finally:
        server.stop()
    table = {}
    for op, by_client in measures.items():
        medians = {name: statistics.median(values) for name, values in by_client.items()}
        table[op] = {
            **{name: round(value, 1) for name, value in medians.items()},
            "lean/boto3": round(medians["lean"] / medians["boto3"], 3),
        }
    return table


def concurrent_row(tmp: str, threads: int, latency_ms: float, calls: int, repeats: int) -> dict[str, Any]:
    server = Server(latency_ms, tmp)
    try:
        s3 = clients(server.url, threads)
        runs: dict[str, list[tuple[float, float]]] = {}
        for _ in range(repeats):
            for name, client in s3.items():
                runs.setdefault(name, []).append(concurrent(client, threads, calls))
    finally:
        server.stop()
    row: dict[str, Any] = {
        "threads": threads,
        "latency_ms": latency_ms,
        "ideal_calls_per_s": round(threads / (latency_ms / 1000)),
    }
    for name, values in runs.items():
        row[name] = {
            "calls_per_s": round(statistics.median(r[0] for r in values)),
            "cpu_us_per_call": round(statistics.median(r[1] for r in values), 1),
        }
    row["lean/boto3"] = {
        "calls_per_s": round(row["lean"]["calls_per_s"] / row["boto3"]["calls_per_s"], 2),
        "cpu_us_per_call": round(row["lean"]["cpu_us_per_call"] / row["boto3"]["cpu_us_per_call"], 3),
    }
    return row


if __name__ == "__main__":
    main()
