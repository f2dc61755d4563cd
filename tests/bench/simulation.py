"""The scale simulation of issue 7: the deployed code path, N worker processes draining the queue.

What runs is what is deployed, short of Lambda itself:

- the work queue and the jobs table (ledger included) on a moto server on 127.0.0.1, in a process
  of its own (so its CPU is its own), with DynamoDB's per-item write atomicity
  (``tests.conftest._serialise_moto_dynamodb_writes``);
- N worker processes, each importing ``functions/run_job/app.py`` as Lambda imports it and being
  its event source mapping with ``BatchSize: 1``: receive one message, call ``lambda_handler``
  with it as an SQS record, delete it if it succeeded, make it visible again if not. Prepare,
  activate, fan-out, chunks and finalize all go through that one handler, with the template's
  settings (``BATCHOPS_ASSUME_JOB_ROLE`` true: STS on moto; ``BATCHOPS_WORKER_CONCURRENCY`` N);
- every S3 call (the manifest, the copies, the report) to the project's stub S3 endpoint
  (``tests/bench/stub_s3.py``), which holds each answer ``delay_ms`` without spending CPU;
- the job created by the jobs API's own service (``JobService`` on the DynamoDB store, its
  status changes sending the work as the deployed dispatcher does).

The workers' DynamoDB and SQS requests go through ``tests.fault_proxy.FaultProxy`` in this
process, which forwards them to moto and shows each one to a counter here: DynamoDB writes are
counted per item (``pk``, ``sk``) and per partition key, with their times, so the highest rate
any single item or partition key sees is measured, not assumed. The run counts only if the job
ends Complete, counted every task, and its report (read back from the stub) has one succeeded
row per task.

Figures per N: tasks/s over the run phase (first chunk taken to last chunk done) against the
ideal (N x in-flight / latency), worker CPU per task, and the CPU each process used over the run
phase (workers, stub, moto, the proxy), which says what saturates. moto is single-process and
slow; chunks of 1,000 tasks keep its requests to a few per thousand tasks, and the output says
so if it still binds. Results: ``bench-results/simulation.json`` and ``simulation.md``.

Run: ``PYTHONPATH=layers/batchops:. .venv/bin/python -m tests.bench.simulation [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from tests.bench import batchops_job
from tests.bench.measure import ROOT, StubServer
from tests.bench.run import busy_cpu_seconds, machine
from tests.fault_proxy import FaultProxy

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient

APPID = "1250000000"
PREFIX = "sim-"
VISIBILITY_SECONDS = 300
"""Longer than any message takes here: a message is seen again only if its handler failed."""
RECEIVE_WAIT_SECONDS = 1
SAMPLE_SECONDS = 0.2
WINDOW_SECONDS = 1.0
"""Write rates are the most writes in any window of this length."""
MACHINE_BUSY_SHARE = 0.85
"""The machine counts as saturated when its cores are busier than this share over the run phase."""
PROCESS_BUSY_CORES = 0.85
"""One process (moto, the stub: each one thread of Python) binds when it is busier than this."""
WORKERS_BUSY_SHARE = 0.85
"""Below this share of the run phase in chunks, the workers wait for work (the last round of chunks)."""
LATENCY_BOUND_SHARE = 0.75
"""A worker whose chunks run at this share of in flight ÷ delay is held by latency, not by a resource
(the rest is each chunk's own ledger and queue calls, and its tasks' CPU under one GIL)."""
WRITE_OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


@dataclass(frozen=True)
class Plan:
    mode: str
    workers: tuple[int, ...]
    tasks: int
    """Tasks of the job each N drains."""
    larger: tuple[int, int] | None
    """(N, tasks): a job this much larger at one N, to show the rates per item do not grow with size."""
    chunk_size: int = 1000
    task_concurrency: int = 16
    delay_ms: float = 20.0
    timeout: float = 120.0


FULL = Plan("full", workers=(1, 2, 4, 8), tasks=24_000, larger=(4, 48_000))
QUICK = Plan("quick", workers=(1, 2, 4), tasks=5_000, larger=None, timeout=60.0)


# --- the moto server, a process of its own ----------------------------------------------------------


def serve_moto() -> int:
    """Child: a threaded moto server on 127.0.0.1 with atomic DynamoDB writes; prints its port."""
    from moto.server import ThreadedMotoServer

    from tests.conftest import _serialise_moto_dynamodb_writes

    _serialise_moto_dynamodb_writes()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request on stderr
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    stop.wait()
    server.stop()
    return 0


class Child:
    """A child process of this module (moto or a worker), stopped by its PID."""

    def __init__(self, args: Sequence[str], env: dict[str, str], *, stdout: Any = subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.simulation", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process (every thread), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- a worker: run_job's handler behind a BatchSize 1 event source mapping ----------------------------


def work(queue_url: str, result: Path, ready: Path) -> int:
    """Child: take messages one at a time and hand each to run_job's handler until SIGTERM."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    environment = dict(os.environ)
    # The harness's Context and loader; importing it sets the suite's fake settings, put ours back.
    from tests.integration.deployed_harness import Context, load, sqs_record

    os.environ.clear()
    os.environ.update(environment)
    run_job = load("run_job_simulated", "functions/run_job/app.py")
    sqs: SQSClient = boto3.client("sqs", config=Config(retries={"mode": "standard", "max_attempts": 5}))
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    handled: list[dict[str, Any]] = []
    started_cpu, started = time.process_time(), time.time()
    ready.write_text("ready")
    while not stopping.is_set():
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
            VisibilityTimeout=VISIBILITY_SECONDS,
            AttributeNames=["All"],
        ).get("Messages", [])
        for message in messages:
            cpu, at = time.process_time(), time.time()
            answer = run_job.lambda_handler({"Records": [sqs_record(message, queue_arn)]}, Context())
            done, used = time.time(), time.process_time() - cpu
            failed = bool(answer["batchItemFailures"])
            if failed:  # as Lambda's poller: the message comes back for another try
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            handled.append(
                {"kind": body["kind"], "index": body.get("index", 0), "start": at, "end": done}
                | {"cpu_s": used, "failed": failed}
            )
    result.write_text(
        json.dumps(
            {
                "messages": handled,
                "cpu_s": time.process_time() - started_cpu,
                "wall_s": time.time() - started,
            }
        )
    )
    return 0


# --- counting the ledger's writes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    at: float
    pk: str
    sk: str
    action: str
    """Put, Update or Delete (a ConditionCheck in a transaction writes nothing and is not one)."""


class RequestLog:
    """Sees every request the proxy forwards: (time, X-Amz-Target, body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[float, str, bytes]] = []

    def __call__(self, request: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        self.requests.append(
            (time.time(), target.decode() if isinstance(target, bytes) else target, request.body)
        )

    def clear(self) -> None:
        self.requests = []

    def operations(self, since: float = 0.0, until: float = float("inf")) -> dict[str, int]:
        """Requests per operation (``DynamoDB.PutItem``, ``SQS.ReceiveMessage``, ...) in [since, until]."""
        counts: dict[str, int] = defaultdict(int)
        for at, target, _ in self.requests:
            if since <= at <= until:
                service, _, operation = target.partition(".")
                counts[f"{'SQS' if service.startswith('AmazonSQS') else 'DynamoDB'}.{operation}"] += 1
        return dict(sorted(counts.items()))

    def writes(self, key_names: tuple[str, str]) -> tuple[list[Write], int]:
        """Every item write, and how many ConditionChecks rode in transactions."""
        found: list[Write] = []
        checks = 0
        for at, target, body in self.requests:
            operation = target.rpartition(".")[2]
            if not target.startswith("DynamoDB") or operation not in WRITE_OPERATIONS:
                continue
            for action, item in item_writes(operation, json.loads(body)):
                if action == "ConditionCheck":
                    checks += 1
                    continue
                pk, sk = (item[name]["S"] for name in key_names)
                found.append(Write(at, pk, sk, action))
        return found, checks


def item_writes(operation: str, request: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(action, key or item) of each item a DynamoDB write request names."""
    if operation == "PutItem":
        yield "Put", request["Item"]
    elif operation == "UpdateItem":
        yield "Update", request["Key"]
    elif operation == "DeleteItem":
        yield "Delete", request["Key"]
    elif operation == "BatchWriteItem":
        for entries in request["RequestItems"].values():
            for entry in entries:
                if "PutRequest" in entry:
                    yield "Put", entry["PutRequest"]["Item"]
                else:
                    yield "Delete", entry["DeleteRequest"]["Key"]
    else:
        for entry in request["TransactItems"]:
            ((action, detail),) = entry.items()
            yield action, detail.get("Item") or detail["Key"]


def most_in_window(times: Iterable[float], window: float = WINDOW_SECONDS) -> int:
    """The most of ``times`` that fall within any interval of ``window`` seconds."""
    ordered = sorted(times)
    best = first = 0
    for last, at in enumerate(ordered):
        while at - ordered[first] > window:
            first += 1
        best = max(best, last - first + 1)
    return best


def shape(key: str, job_id: str) -> str:
    """A key with the job id and every number generalised: ``LEDGER#<job>#n`` / ``SEG#n#n``."""
    return re.sub(r"\d+", "n", key.replace(job_id, "<job>"))


def write_figures(writes: list[Write], job_id: str, chunks: int, run: tuple[float, float]) -> dict[str, Any]:
    """Writes per item and per partition key: totals, and the most in any second (whole job; run
    phase, the job item aside: ``job_item`` has its own)."""
    by_item: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_pk: dict[str, list[float]] = defaultdict(list)
    for w in writes:
        by_item[(w.pk, w.sk)].append(w.at)
        by_pk[w.pk].append(w.at)
    in_run = [w for w in writes if run[0] <= w.at <= run[1]]
    run_item: dict[tuple[str, str], list[float]] = defaultdict(list)
    run_pk: dict[str, list[float]] = defaultdict(list)
    for w in in_run:
        if w.pk != f"JOB#{job_id}":  # the job item has figures of its own
            run_item[(w.pk, w.sk)].append(w.at)
            run_pk[w.pk].append(w.at)

    def hottest_item(groups: dict[tuple[str, str], list[float]]) -> dict[str, Any]:
        if not groups:
            return {"key": None, "writes": 0, "max_per_s": 0}
        key, times = max(groups.items(), key=lambda kv: (most_in_window(kv[1]), len(kv[1])))
        return {"key": f"{shape(key[0], job_id)} / {shape(key[1], job_id)}", "writes": len(times)} | {
            "max_per_s": most_in_window(times)
        }

    def hottest_pk(groups: dict[str, list[float]]) -> dict[str, Any]:
        if not groups:
            return {"key": None, "writes": 0, "max_per_s": 0}
        key, times = max(groups.items(), key=lambda kv: (most_in_window(kv[1]), len(kv[1])))
        return {"key": shape(key, job_id), "writes": len(times), "max_per_s": most_in_window(times)}

    kinds: dict[str, dict[str, Any]] = {}
    for (pk, sk), times in by_item.items():
        kind = kinds.setdefault(
            f"{shape(pk, job_id)} / {shape(sk, job_id)}", {"items": 0, "writes": 0, "max_writes_per_item": 0}
        )
        kind["items"] += 1
        kind["writes"] += len(times)
        kind["max_writes_per_item"] = max(kind["max_writes_per_item"], len(times))
        kind["max_per_s_per_item"] = max(kind.get("max_per_s_per_item", 0), most_in_window(times))
    job_item = by_item.get((f"JOB#{job_id}", "JOB"), [])
    return {
        "writes": len(writes),
        "items": len(by_item),
        "partition_keys": len(by_pk),
        "run_writes": len(in_run),
        "run_writes_per_chunk": len(in_run) / chunks if chunks else None,
        "hottest_item": hottest_item(by_item),
        "hottest_partition_key": hottest_pk(by_pk),
        "run_hottest_item": hottest_item(run_item),
        "run_hottest_partition_key": hottest_pk(run_pk),
        "job_item": {"writes": len(job_item), "max_per_s": most_in_window(job_item)},
        "kinds": dict(sorted(kinds.items())),
    }


# --- one simulated job --------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    moto_cpu: float
    stub_cpu: float
    own_cpu: float
    busy_cpu: float


@dataclass
class Bed:
    """What every run shares: moto, the stub, the proxy and its request log, an S3 client on the stub."""

    moto: Child
    moto_endpoint: str
    stub: StubServer
    proxy: FaultProxy
    log: RequestLog
    objects: Path
    scratch: Path
    s3: S3Client
    key_names: tuple[str, str]
    samples: list[Sample] = field(default_factory=list)

    def sample(self) -> Sample:
        taken = Sample(
            time.time(),
            process_cpu_seconds(self.moto.pid),
            process_cpu_seconds(self.stub.proc.pid),
            time.process_time(),  # this process: the proxy's threads, the driver
            busy_cpu_seconds(),
        )
        self.samples.append(taken)
        return taken

    def at(self, moment: float) -> Sample:
        """The sample nearest ``moment``."""
        return min(self.samples, key=lambda s: abs(s.at - moment))


@contextmanager
def servers() -> Iterator[Bed]:
    from tests.conftest import template

    work = Path(tempfile.mkdtemp(prefix="batchops-sim-"))
    objects = work / "objects"
    objects.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "batchops"), str(ROOT)])}
    moto = Child(["--serve-moto"], env, stdout=subprocess.PIPE)
    stub: StubServer | None = None
    proxy: FaultProxy | None = None
    try:
        assert moto.proc.stdout is not None
        port = moto.proc.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"the moto server did not start (it printed {port!r})")
        moto_endpoint = f"http://127.0.0.1:{port}"
        stub = StubServer(objects, keep_puts=True)
        proxy = FaultProxy(moto_endpoint)
        log = RequestLog()
        proxy.inject("*", log)
        schema = template()["Resources"]["JobsTable"]["Properties"]["KeySchema"]
        hash_key, range_key = (k["AttributeName"] for k in sorted(schema, key=lambda k: k["KeyType"]))
        yield Bed(
            moto,
            moto_endpoint,
            stub,
            proxy,
            log,
            objects,
            work / "scratch",
            stub.s3_client(),
            (hash_key, range_key),
        )
    finally:
        if proxy is not None:
            proxy.stop()
        if stub is not None:
            stub.stop()
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)


def worker_env(
    bed: Bed, plan: Plan, *, workers: int, table: str, queue_url: str, home: Path
) -> dict[str, str]:
    """RunJobFunction's environment as the template sets it, every endpoint on 127.0.0.1."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "batchops"), str(ROOT)]),
        "AWS_ACCESS_KEY_ID": "sim",
        "AWS_SECRET_ACCESS_KEY": "sim",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": bed.moto_endpoint,  # STS, for the job's role
        "AWS_ENDPOINT_URL_DYNAMODB": bed.proxy.url,
        "AWS_ENDPOINT_URL_SQS": bed.proxy.url,
        "AWS_ENDPOINT_URL_S3": bed.stub.endpoint,
        "AWS_LAMBDA_FUNCTION_NAME": "RunJobFunction",
        "JOBS_TABLE": table,
        "WORK_QUEUE_URL": queue_url,
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_METRICS_NAMESPACE": "BatchOps",
        "POWERTOOLS_TRACE_DISABLED": "1",  # no X-Ray daemon here
        "BATCHOPS_TASK_CONCURRENCY": str(plan.task_concurrency),
        "BATCHOPS_WORKER_CONCURRENCY": str(max(2, workers)),
        "BATCHOPS_DEADLINE_MARGIN_SECONDS": "60",
        "BATCHOPS_ASSUME_JOB_ROLE": "true",
        "BATCHOPS_CHUNK_SIZE": str(plan.chunk_size),
        "BATCHOPS_S3_ADDRESSING_STYLE": "path",
    }


def deployed_service(endpoint: str, table: str, queue_url: str) -> Any:
    """The jobs API's JobService: the DynamoDB store, status changes sent as work to the queue."""
    from batchops.clients import STORE_CLIENT_CONFIG
    from batchops.engine.sqs import SqsDispatcher
    from batchops.jobs.service import JobService
    from batchops.store.dynamodb import DynamoDBJobStore
    from batchops.store.dynamodb_ledger import DynamoDBLedger

    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, config=STORE_CLIENT_CONFIG)
    dispatcher = SqsDispatcher(boto3.client("sqs", endpoint_url=endpoint), queue_url)
    return JobService(
        DynamoDBJobStore(table, dynamodb),
        max_active_jobs=1000,
        live_progress=DynamoDBLedger(table, dynamodb).progress,
        on_change=dispatcher.on_job_change,
    )


def simulate(bed: Bed, plan: Plan, workers: int, tasks: int, say: Any) -> dict[str, Any]:
    """One job of ``tasks`` copies drained by ``workers`` processes; its figures."""
    from batchops.jobs.status import JobStatus, is_terminal
    from tests.conftest import create_jobs_table

    suffix = uuid.uuid4().hex[:8]
    endpoint = bed.moto_endpoint
    table = create_jobs_table(
        boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1"), f"jobs-{suffix}"
    )
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    dlq = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    queue_url = sqs.create_queue(QueueName=f"work-{suffix}", Attributes={"RedrivePolicy": redrive})[
        "QueueUrl"
    ]
    manifest_key, etag = batchops_job.write_manifest(bed.objects, tasks, PREFIX)
    home = bed.scratch / suffix
    home.mkdir(parents=True)
    env = worker_env(bed, plan, workers=workers, table=table, queue_url=queue_url, home=home)
    children = [
        Child(["--worker", queue_url, str(home / f"w{n}.json"), str(home / f"w{n}.ready")], env)
        for n in range(workers)
    ]
    record: dict[str, Any] = {"workers": workers, "tasks": tasks, "chunks": -(-tasks // plan.chunk_size)}
    try:
        deadline = time.monotonic() + plan.timeout
        while not all((home / f"w{n}.ready").exists() for n in range(workers)):
            if any(c.proc.poll() is not None for c in children) or time.monotonic() > deadline:
                raise RuntimeError("a worker did not start")
            time.sleep(0.05)
        bed.stub.configure(delay_ms=plan.delay_ms)
        bed.stub.reset()
        bed.log.clear()
        bed.proxy.seen.clear()
        bed.samples = []
        service = deployed_service(bed.proxy.url, table, queue_url)
        first = bed.sample()
        spec = batchops_job.job_spec("copy", manifest_key, etag, f"sim-{suffix}")
        job = service.create(APPID, spec)
        deadline = time.monotonic() + plan.timeout
        next_look = 0.0
        while True:
            bed.sample()
            if time.monotonic() >= next_look:
                job = service.get(APPID, job.job_id)
                if is_terminal(job.status):
                    break
                next_look = time.monotonic() + 0.25
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the job did not end within {plan.timeout:.0f} s (it is {job.status.value})"
                )
            time.sleep(SAMPLE_SECONDS)
        last = bed.sample()
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        return record
    finally:
        for child in children:
            child.stop()
    stats = bed.stub.stats()
    job = service.describe(APPID, job.job_id)
    record["error"] = batchops_job.check_completed(job, tasks, bed.s3)
    record["report_rows"] = (
        len(batchops_job.report_statuses(job.job_id, bed.s3)) if job.status is JobStatus.COMPLETE else 0
    )
    missing = [n for n in range(workers) if not (home / f"w{n}.json").exists()]
    if missing:
        record["error"] = f"worker(s) {missing} ended without writing what they did"
        return record
    outputs = [json.loads((home / f"w{n}.json").read_text()) for n in range(workers)]
    messages = [m | {"worker": n} for n, out in enumerate(outputs) for m in out["messages"]]
    chunk_messages = [m for m in messages if m["kind"] == "chunk"]
    run = (
        (min(m["start"] for m in chunk_messages), max(m["end"] for m in chunk_messages))
        if chunk_messages
        else (first.at, last.at)
    )
    run_s = run[1] - run[0]
    at_start, at_end = bed.at(run[0]), bed.at(run[1])
    sampled_s = at_end.at - at_start.at or run_s
    chunk_cpu = sum(m["cpu_s"] for m in chunk_messages)
    busy_in_chunks = sum(m["end"] - m["start"] for m in chunk_messages)
    dynamo_sqs = bed.log.operations(run[0], run[1])
    requests_in_run = sum(dynamo_sqs.values())
    writes, checks = bed.log.writes(bed.key_names)
    busy = {
        "workers": chunk_cpu / run_s,
        "stub": (at_end.stub_cpu - at_start.stub_cpu) / sampled_s,
        "moto": (at_end.moto_cpu - at_start.moto_cpu) / sampled_s,
        "proxy_and_driver": (at_end.own_cpu - at_start.own_cpu) / sampled_s,
        "machine": (at_end.busy_cpu - at_start.busy_cpu) / sampled_s,
    }
    busy["others"] = max(
        0.0, busy["machine"] - sum(busy[k] for k in ("workers", "stub", "moto", "proxy_and_driver"))
    )
    copies = stats["operations"].get("CopyObject", 0)
    ideal = workers * plan.task_concurrency / (plan.delay_ms / 1000)
    record.update(
        job_id=job.job_id,
        status=job.status.value,
        job_seconds=last.at - first.at,
        run_seconds=run_s,
        tasks_per_s=tasks / run_s if run_s > 0 else None,
        ideal_tasks_per_s=ideal,
        worker_cpu_us_per_task=chunk_cpu / tasks * 1e6,
        # The share of the run phase the N workers spent in chunks (the rest: taking messages, and
        # the tail, when fewer chunks than workers are left), and the rate of a worker in a chunk.
        workers_busy=busy_in_chunks / (workers * run_s) if run_s > 0 else None,
        tasks_per_s_in_chunk=tasks / busy_in_chunks if busy_in_chunks > 0 else None,
        worker_cpu_s=sum(out["cpu_s"] for out in outputs),
        cores_busy=busy,
        messages={
            kind: sum(1 for m in messages if m["kind"] == kind)
            for kind in ("prepare", "activate", "fanout", "chunk", "finalize")
        },
        failed_messages=sum(1 for m in messages if m["failed"]),
        chunks_per_worker=[sum(1 for m in chunk_messages if m["worker"] == n) for n in range(workers)],
        stub={
            "requests": stats["requests"],
            "operations": stats["operations"],
            "copies_per_s": copies / run_s if run_s > 0 else None,
            "cpu_us_per_request": (last.stub_cpu - first.stub_cpu) / stats["requests"] * 1e6
            if stats["requests"]
            else None,
        },
        queue_and_ledger={
            "operations": bed.log.operations(),
            "run_requests_per_s": requests_in_run / run_s if run_s > 0 else None,
            "run_requests_per_chunk": requests_in_run / record["chunks"],
            "moto_cpu_us_per_request": (at_end.moto_cpu - at_start.moto_cpu) / requests_in_run * 1e6
            if requests_in_run
            else None,
        },
        ledger_writes=write_figures(writes, job.job_id, record["chunks"], run) | {"condition_checks": checks},
    )
    # All of this simulation's CPU per task (workers, stub, moto, proxy), and the rate at which it
    # would fill every core of the machine were nothing else running.
    ours = sum(busy[k] for k in ("workers", "stub", "moto", "proxy_and_driver"))
    if record["tasks_per_s"]:
        record["cpu_us_per_task_all"] = ours / record["tasks_per_s"] * 1e6
        record["machine_ceiling_tasks_per_s"] = (os.cpu_count() or 1) / (ours / record["tasks_per_s"])
    record["binding"] = binding(record)
    say(
        f"N={workers} tasks={tasks}: {record['tasks_per_s']:,.0f} tasks/s over {run_s:.1f} s "
        f"({record['tasks_per_s'] / ideal:.2f} of ideal), job {record['job_seconds']:.1f} s; {record['binding']}"
        + (f"; FAILED: {record['error']}" if record["error"] else "")
    )
    return record


def binding(record: dict[str, Any]) -> str:
    """What sets this run's rate: latency while a worker in a chunk gets near in flight ÷ delay,
    else whatever was saturated over the run phase (from the CPU each process used)."""
    busy = record["cores_busy"]
    cores = os.cpu_count() or 1
    if not record["tasks_per_s_in_chunk"]:
        return "no chunk ran"
    in_chunk = record["tasks_per_s_in_chunk"] / (record["ideal_tasks_per_s"] / record["workers"])
    if in_chunk >= LATENCY_BOUND_SHARE:
        return f"latency: a worker in a chunk runs at {in_chunk:.2f} of in flight ÷ delay"
    if busy["machine"] >= MACHINE_BUSY_SHARE * cores:
        return f"the machine's {cores} cores ({busy['machine']:.2f} busy, {busy['others']:.2f} of it others')"
    for server, name in (("moto", "moto"), ("stub", "the stub endpoint")):
        if busy[server] >= PROCESS_BUSY_CORES:
            return f"{name} ({busy[server]:.2f} of a core)"
    if record["workers_busy"] < WORKERS_BUSY_SHARE:
        spread = record["chunks_per_worker"]
        return (
            f"the tail: workers in chunks {record['workers_busy']:.0%} of the run phase "
            f"({min(spread)}-{max(spread)} chunks each)"
        )
    return f"nothing saturated: a worker in a chunk runs at {in_chunk:.2f} of in flight ÷ delay"


# --- output -------------------------------------------------------------------------------------------


def fmt(number: float | None, digits: int = 0) -> str:
    return "-" if number is None else f"{number:,.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    plan, m = result["plan"], result["machine"]
    runs = [r for r in result["runs"] if "tasks_per_s" in r]
    lines = [
        "# Scale simulation (issue 7)",
        "",
        f"{result['date']} · `python -m tests.bench.simulation{' --quick' if plan['mode'] == 'quick' else ''}` "
        f"({result['seconds']:.0f} s) · {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
        f"load average before {m['load_average'][0]:.1f}.",
        "",
        "RunJobFunction's handler in N worker processes (each a BatchSize 1 event source mapping), SQS and "
        "the DynamoDB ledger on one moto server, S3 on the stub endpoint answering after "
        f"{plan['delay_ms']:g} ms; {plan['task_concurrency']} tasks in flight per worker, chunks of "
        f"{plan['chunk_size']:,} tasks. tasks/s is over the run phase (first chunk taken to last chunk "
        "done); ideal is N x in flight ÷ delay. Cores busy over the run phase: workers (their CPU in chunk "
        "messages), the stub, moto, this process (the counting proxy), others (the rest of the machine).",
        "",
        "| N | tasks | tasks/s | ÷ ideal | workers in chunks | worker CPU µs/task "
        "| cores busy: workers · stub · moto · proxy · others | stub copies/s | moto req/s (per chunk) "
        "| what binds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        if "tasks_per_s" not in r:
            lines.append(f"| {r['workers']} | {r['tasks']:,} | FAILED: {r.get('error')} | | | | | | | |")
            continue
        b, q = r["cores_busy"], r["queue_and_ledger"]
        failed = f" FAILED: {r['error']}" if r["error"] else ""
        lines.append(
            f"| {r['workers']} | {r['tasks']:,} | {fmt(r['tasks_per_s'])}{failed} | "
            f"{r['tasks_per_s'] / r['ideal_tasks_per_s']:.2f} | {r['workers_busy']:.0%} | "
            f"{fmt(r['worker_cpu_us_per_task'])} | "
            f"{b['workers']:.2f} · {b['stub']:.2f} · {b['moto']:.2f} · {b['proxy_and_driver']:.2f} · "
            f"{b['others']:.2f} | {fmt(r['stub']['copies_per_s'])} | {fmt(q['run_requests_per_s'])} "
            f"({fmt(q['run_requests_per_chunk'], 1)}) | {r['binding']} |"
        )
    lines += [
        "",
        "## Ledger writes",
        "",
        "DynamoDB writes counted per item (pk, sk) and per partition key at the proxy; a "
        "ConditionCheck in a transaction is not a write, a refused conditional write is (DynamoDB bills it). "
        "Max/s is the most writes in any 1 s window: over the run phase for every item but the job's own, "
        "then over the whole job (prepare's chunk puts and finalize's deletes included), then for the job item.",
        "",
        "| N | tasks | writes per chunk (run) | hottest ledger item, run: max/s | hottest ledger partition key, "
        "run: max/s | whole job: item max/s · partition key max/s | job item: writes (max/s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        w = r["ledger_writes"]
        lines.append(
            f"| {r['workers']} | {r['tasks']:,} | {fmt(w['run_writes_per_chunk'], 1)} | "
            f"`{w['run_hottest_item']['key']}`: {w['run_hottest_item']['max_per_s']} | "
            f"`{w['run_hottest_partition_key']['key']}`: {w['run_hottest_partition_key']['max_per_s']} | "
            f"{w['hottest_item']['max_per_s']} (`{w['hottest_item']['key']}`) · "
            f"{w['hottest_partition_key']['max_per_s']} (`{w['hottest_partition_key']['key']}`) | "
            f"{w['job_item']['writes']} ({w['job_item']['max_per_s']}) |"
        )
    if runs:
        largest = max(runs, key=lambda r: (r["tasks"], r["workers"]))
        lines += [
            "",
            f"By item kind, N={largest['workers']}, {largest['tasks']:,} tasks ({largest['chunks']} chunks):",
            "",
            "| item (pk / sk) | items | writes | writes per chunk | most writes on one item | max/s on one item |",
            "|---|---|---|---|---|---|",
        ]
        for kind, k in largest["ledger_writes"]["kinds"].items():
            lines.append(
                f"| `{kind}` | {k['items']:,} | {k['writes']:,} | {k['writes'] / largest['chunks']:.2f} | "
                f"{k['max_writes_per_item']} | {k['max_per_s_per_item']} |"
            )
    lines += ["", *result["findings"]]
    return "\n".join(lines) + "\n"


def findings(runs: list[dict[str, Any]]) -> list[str]:
    """What the runs say, in sentences: scaling, what saturates, whether any write rate grows."""
    good = [r for r in runs if "tasks_per_s" in r and not r["error"]]
    if not good:
        return ["No run completed."]
    said: list[str] = []
    base = [r for r in good if r["tasks"] == good[0]["tasks"]]
    rates = ", ".join(f"N={r['workers']} {r['tasks_per_s']:,.0f}" for r in base)
    best = max(base, key=lambda r: r["tasks_per_s"])
    said.append(
        f"Throughput (tasks/s): {rates}; the most at N={best['workers']}, bound by {best['binding']}."
    )
    said.append(
        f"All of the simulation's processes together spend {best['cpu_us_per_task_all']:,.0f} µs of CPU per task "
        f"at N={best['workers']}: with nothing else running, {os.cpu_count() or 1} cores fill at about "
        f"{best['machine_ceiling_tasks_per_s']:,.0f} tasks/s."
    )
    for r in base:
        b = r["cores_busy"]
        said.append(
            f"N={r['workers']}: stub {r['stub']['copies_per_s']:,.0f} copies/s at "
            f"{fmt(r['stub']['cpu_us_per_request'])} µs CPU each ({b['stub']:.2f} core), moto "
            f"{r['queue_and_ledger']['run_requests_per_s']:,.0f} requests/s ({b['moto']:.2f} core), workers "
            f"{b['workers']:.2f} cores at {r['worker_cpu_us_per_task']:,.0f} µs/task; machine {b['machine']:.2f} busy."
        )
    items = [r["ledger_writes"]["run_hottest_item"]["max_per_s"] for r in good]
    pks = [r["ledger_writes"]["run_hottest_partition_key"]["max_per_s"] for r in good]
    per_chunk = [r["ledger_writes"]["run_writes_per_chunk"] for r in good]
    said.append(
        f"Ledger, run phase: at most {max(items)} writes/s on any one ledger item and {max(pks)} on any one "
        f"partition key in every run (N {min(r['workers'] for r in good)}-{max(r['workers'] for r in good)}, "
        f"{min(r['tasks'] for r in good):,}-{max(r['tasks'] for r in good):,} tasks); "
        f"{min(per_chunk):.1f}-{max(per_chunk):.1f} writes per chunk, the job item's included."
    )
    whole = max(good, key=lambda r: r["ledger_writes"]["hottest_partition_key"]["max_per_s"])["ledger_writes"]
    job = [(r["workers"], r["ledger_writes"]["job_item"]) for r in good]
    said.append(
        f"Whole job: at most {whole['hottest_partition_key']['max_per_s']} writes/s on one partition key "
        f"(`{whole['hottest_partition_key']['key']}`: prepare's chunk puts, finalize's deletes). The job item "
        "took " + ", ".join(f"{j['writes']} at N={n}" for n, j in job) + f" writes (at most "
        f"{max(j['max_per_s'] for _, j in job)} in one second): one per status change (New, Preparing, Ready, "
        "Active, Completing, Complete), and a refused conditional write for each chunk that saw the job done "
        "at the same moment as another (fewer than N, once per job)."
    )
    return said


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="N = 1, 2, 4 on a small job: about 35 s")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results", help="where results go")
    parser.add_argument("--workers", help="comma-separated N to run (default: the plan's)")
    parser.add_argument("--tasks", type=int, help="tasks of each job (default: the plan's)")
    parser.add_argument(
        "--render", action="store_true", help="run nothing: remake simulation.md from OUT/simulation.json"
    )
    parser.add_argument("--serve-moto", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=3, metavar=("QUEUE_URL", "RESULT", "READY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_moto:
        return serve_moto()
    if args.worker:
        queue_url, result_path, ready_path = args.worker
        return work(queue_url, Path(result_path), Path(ready_path))
    if args.render:
        print(render(args.out))
        return 0
    plan = QUICK if args.quick else FULL
    if args.workers:
        plan = Plan(**{**asdict(plan), "workers": tuple(int(n) for n in args.workers.split(","))})
    if args.tasks:
        plan = Plan(**{**asdict(plan), "tasks": args.tasks, "larger": None})
    result = simulation(plan, args.out)
    print(markdown(result))
    return 0 if all(not r.get("error") for r in result["runs"]) else 1


def render(out: Path) -> str:
    """The verdicts and tables again from a simulation.json (after a change to how they are made)."""
    result: dict[str, Any] = json.loads((out / "simulation.json").read_text())
    for run in result["runs"]:
        if "tasks_per_s" in run:
            run["binding"] = binding(run)
    result["findings"] = findings(result["runs"])
    (out / "simulation.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = markdown(result)
    (out / "simulation.md").write_text(table)
    return table


def simulation(plan: Plan, out: Path | None) -> dict[str, Any]:
    """Run ``plan``; write simulation.json and simulation.md into ``out`` (None: nowhere)."""
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    info = machine()
    runs: list[dict[str, Any]] = []
    with servers() as bed:
        say(
            f"moto at {bed.moto_endpoint}, stub at {bed.stub.endpoint}, proxy at {bed.proxy.url}; {plan.mode} plan"
        )
        sizes = [(n, plan.tasks) for n in plan.workers] + ([plan.larger] if plan.larger else [])
        for workers, tasks in sizes:
            runs.append(simulate(bed, plan, workers, tasks, say))
    result: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "plan": asdict(plan),
        "machine": info,
        "seconds": time.perf_counter() - started,
        "runs": runs,
        "findings": findings(runs),
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "simulation.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        (out / "simulation.md").write_text(markdown(result))
        say(f"results in {out}/simulation.json and simulation.md")
    return result


if __name__ == "__main__":
    sys.exit(main())
