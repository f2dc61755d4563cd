"""Cold start of each Lambda function: import and init of its handler module, then a first invoke.

Every run is a fresh interpreter with the environment the deployed function gets: template.yaml's
Globals and the function's own variables (values from events/env.json, else the parameter's
default), the variables Lambda's runtime sets, fake credentials, and every AWS endpoint pointed at
a moto server on 127.0.0.1 started here (the X-Ray daemon address at a UDP socket of this
process, which counts what the tracer sends). Each function is measured twice: ``traced`` as
deployed (``Tracing: Active``), and ``untraced`` as `sam local` and the tests run it
(POWERTOOLS_TRACE_DISABLED).

The first invoke is a real one, on a fresh table and queue each run: JobsApiFunction creates the
seed's job (events/jobs_api/create_job.json), RunJobFunction prepares a job whose manifest is on
moto (events/run_job/prepare.json, as the job's role through STS), SubmitJobFunction turns a
landed inventory into a job (events/submit_job/s3_manifest_checksum.json). A run whose invoke did
not do that fails the benchmark: a fast wrong answer is no figure.

    PYTHONPATH=layers/batchops:. .venv/bin/python -m tests.bench.cold_start
    ... -m tests.bench.cold_start --python ~/.pyenv/versions/3.12.1/bin/python3.12   # .aws-sam/build
    ... --python .../python3.12 --build /tmp/before/.aws-sam/build --build .aws-sam/build   # A/B

With ``--python`` and `make build`'s artifacts present (or directories given with ``--build``),
the child runs the built code: .aws-sam/build/<Function> and the layer's python/ directory,
nothing else but the standard library, as on Lambda. Otherwise (or with ``--source`` too) the
source tree with the child interpreter's site-packages. Several codes are measured turn about,
run by run, so that a noisy machine slows them alike; ratios are to the first.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from tests.conftest import EVENTS, ROOT, create_jobs_table, template

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

# Lines the child writes to stderr between phases, to split `-X importtime`'s report.
STARTING, INITIALISED = "batchops-cold-start: importing the handler", "batchops-cold-start: init done"
JOB_ID = "53dc6228-c50b-46f7-8ad7-65e7159f1aae"  # the job events/run_job/prepare.json names
INVENTORY_BUCKET = "example-inventory-bucket"  # where events/submit_job/s3_manifest_checksum.json landed
INVENTORY_PREFIX = "inventory/example-source-bucket/daily-copy/2026-11-24T01-00Z/"
MODES = ("traced", "untraced")


@dataclass(frozen=True)
class Function:
    name: str
    """The template's logical id (and the .aws-sam/build directory)."""
    directory: str
    event: str

    @property
    def event_path(self) -> Path:
        return EVENTS / self.directory / self.event


FUNCTIONS = (
    Function("JobsApiFunction", "jobs_api", "create_job.json"),
    Function("RunJobFunction", "run_job", "prepare.json"),
    Function("SubmitJobFunction", "submit_job", "s3_manifest_checksum.json"),
)


@dataclass(frozen=True)
class Code:
    """What a cold start runs: the source tree, or the output directory of `sam build`."""

    label: str
    build: Path | None

    def paths(self, function: Function) -> list[str]:
        if self.build is not None:
            return [str(self.build / function.name), str(self.build / "BatchopsLayer" / "python")]
        return [str(ROOT / "functions" / function.directory), str(ROOT / "layers" / "batchops")]

    @property
    def flags(self) -> list[str]:
        # -I: no PYTHONPATH, no user site, no script directory. Over built artifacts also -S (only
        # the standard library besides them, as on Lambda, whose runtime has its own boto3 behind
        # the layer) and -B: Lambda's code directories are read-only, so Python can never cache
        # the bytecode it compiles there; only the .pyc files the artifacts ship are ever read.
        return ["-I", "-S", "-B"] if self.build is not None else ["-I"]

    @property
    def pyc_files(self) -> int | None:
        return None if self.build is None else sum(1 for _ in self.build.rglob("*.pyc"))


# Runs in the child: what Lambda's runtime does for a cold start (import the handler module, then
# call the handler once), timed. The standard modules that Lambda's Python runtime (awslambdaric:
# bootstrap.py, lambda_runtime_client.py, lambda_runtime_marshaller.py) has imported before it
# imports the handler are imported before the clock starts; everything else counts.
CHILD = r"""
import concurrent.futures, decimal, importlib, json, logging, math, os, sys, time, traceback
paths, event_path, function_name, memory = json.loads(sys.argv[1])
sys.path[0:0] = paths
sys.stderr.write("STARTING\n")
sys.stderr.flush()
started = time.perf_counter()
module = importlib.import_module("app")
initialised = time.perf_counter()
sys.stderr.write("INITIALISED\n")
sys.stderr.flush()
with open(event_path) as f:
    event = json.load(f)

class Context:
    function_name = function_name
    function_version = "$LATEST"
    memory_limit_in_mb = memory
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    aws_request_id = "5e7d2e5b-3e2c-4a0f-9a51-0f4b1d1f6a11"
    log_group_name = "/aws/lambda/" + function_name
    log_stream_name = "2026/11/24/[$LATEST]0123456789abcdef"
    def get_remaining_time_in_millis(self):
        return 600000

# The runtime sets the trace header of each invocation before calling the handler.
os.environ["_X_AMZN_TRACE_ID"] = "Root=1-6743b1c2-0f1e2d3c4b5a69788796a5b4;Parent=53995c3f42cd8ad8;Sampled=1"
invoking = time.perf_counter()
result = module.lambda_handler(event, Context())
invoked = time.perf_counter()
print(json.dumps({
    "init_ms": (initialised - started) * 1000,
    "invoke_ms": (invoked - invoking) * 1000,
    "result": result,
}, default=str))
""".replace("STARTING", STARTING).replace("INITIALISED", INITIALISED)


@dataclass
class Moto:
    endpoint: str
    s3: S3Client
    manifest_etag: str
    manifest_bucket: str
    target_bucket: str


def start_moto() -> tuple[Any, Moto]:
    from moto.server import ThreadedMotoServer

    from tests.integration.jobs_harness import csv_manifest, land_inventory, put_manifest

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint)
    source, target = f"src-{uuid.uuid4().hex[:8]}", f"dst-{uuid.uuid4().hex[:8]}"
    for bucket in (source, target):
        s3.create_bucket(Bucket=bucket)
    for n in range(3):
        s3.put_object(Bucket=source, Key=f"o {n}", Body=str(n).encode())
    etag = put_manifest(s3, source, "m.csv", csv_manifest([(source, f"o {n}") for n in range(3)]))
    land_inventory(s3, INVENTORY_BUCKET, INVENTORY_PREFIX)
    return server, Moto(endpoint, s3, etag, source, target)


def deployed_environment(function: Function) -> dict[str, str]:
    """The function's variables as the stack sets them (template.yaml, events/env.json values)."""
    parsed = template()
    parameters = parsed["Parameters"]
    local = json.loads((EVENTS / "env.json").read_text()).get(function.name, {})
    declared = {
        **parsed["Globals"]["Function"]["Environment"]["Variables"],
        **parsed["Resources"][function.name]["Properties"].get("Environment", {}).get("Variables", {}),
    }
    env: dict[str, str] = {}
    for name, value in declared.items():
        if name in local:
            env[name] = local[name]
        elif isinstance(value, str):
            env[name] = value
        elif isinstance(value, dict) and value.get("Ref") in parameters:
            env[name] = str(parameters[value["Ref"]]["Default"])
    return env


def memory_size(function: Function) -> int:
    parsed = template()
    size = parsed["Resources"][function.name]["Properties"].get("MemorySize")
    return int(size or parsed["Globals"]["Function"]["MemorySize"])


def child_environment(
    function: Function, code: Code, mode: str, moto: Moto, *, run: dict[str, str], xray: int
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        # What Lambda's runtime sets.
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_size(function)),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "LAMBDA_TASK_ROOT": code.paths(function)[0],
        "_HANDLER": "app.lambda_handler",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{xray}",
        "_AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1",
        "_AWS_XRAY_DAEMON_PORT": str(xray),
        # Fake credentials, and nothing can reach AWS: every service goes to moto.
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_ENDPOINT_URL": moto.endpoint,
        **deployed_environment(function),
        **run,
    }
    if mode == "untraced":
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def prepare_run(function: Function, moto: Moto) -> dict[str, str]:
    """A fresh table and queue (and what the event needs in them) for one cold start."""
    suffix = uuid.uuid4().hex[:10]
    dynamodb = boto3.client("dynamodb", endpoint_url=moto.endpoint)
    table = create_jobs_table(dynamodb, f"jobs-{suffix}")
    queue = boto3.client("sqs", endpoint_url=moto.endpoint).create_queue(QueueName=f"work-{suffix}")[
        "QueueUrl"
    ]
    if function.name == "RunJobFunction":
        from batchops.api.create_job import parse_create_job
        from batchops.jobs.service import JobService
        from batchops.store.dynamodb import DynamoDBJobStore
        from tests.integration.jobs_harness import request

        copy = f"<COSPutObjectCopy><TargetResource>arn:aws:s3:::{moto.target_bucket}</TargetResource></COSPutObjectCopy>"
        body = request(moto.manifest_bucket, "m.csv", moto.manifest_etag, copy, moto.manifest_bucket)
        service = JobService(DynamoDBJobStore(table, dynamodb), max_active_jobs=10, job_ids=lambda: JOB_ID)
        service.create("1250000000", parse_create_job(body))
    return {"JOBS_TABLE": table, "WORK_QUEUE_URL": queue}


def check(function: Function, result: Any) -> None:
    """The invoke did the work its event asks for, or the timing means nothing."""
    if function.name == "JobsApiFunction":
        ok = result.get("statusCode") == 200 and "<JobId>" in result.get("body", "")
    elif function.name == "RunJobFunction":
        ok = result == {"batchItemFailures": []}
    else:
        ok = [s.get("duplicate") for s in result.get("submitted", [])] == [False]
    if not ok:
        raise SystemExit(f"{function.name}: the first invoke did not do its work: {result!r}")


def run_child(
    python: str, code: Code, function: Function, env: dict[str, str], importtime: bool = False
) -> tuple[dict[str, Any], str]:
    args = json.dumps([code.paths(function), str(function.event_path), function.name, memory_size(function)])
    flags = [*code.flags, "-X", "importtime"] if importtime else code.flags
    started = time.perf_counter()
    done = subprocess.run(
        [python, *flags, "-c", CHILD, args], env=env, capture_output=True, text=True, check=False
    )
    wall = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{function.name}: the child failed:\n{done.stderr[-4000:]}")
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    measured["process_ms"] = wall
    return measured, done.stderr


def drain(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.recv(65536)
        except BlockingIOError:
            return count
        count += 1


@dataclass
class Imports:
    """One phase of `-X importtime`: every module imported, with its self time in ms."""

    modules: list[tuple[str, float]]

    @property
    def total_ms(self) -> float:
        return sum(ms for _, ms in self.modules)

    def top_modules(self, top: int) -> list[tuple[str, float]]:
        return sorted(self.modules, key=lambda m: m[1], reverse=True)[:top]

    def top_packages(self, top: int) -> list[tuple[str, float]]:
        """Self time summed by top-level package: where a cost spread over many modules shows."""
        packages: dict[str, float] = {}
        for name, ms in self.modules:
            packages[name.split(".")[0]] = packages.get(name.split(".")[0], 0.0) + ms
        return sorted(packages.items(), key=lambda p: p[1], reverse=True)[:top]


def import_phases(stderr: str) -> dict[str, Imports]:
    """`-X importtime` lines split at the child's markers: imports while initialising, while invoking
    (what the runtime imported before the handler is left out)."""
    phases = {"runtime": Imports([]), "init": Imports([]), "invoke": Imports([])}
    phase = "runtime"
    for line in stderr.splitlines():
        if line in (STARTING, INITIALISED):
            phase = "init" if line == STARTING else "invoke"
            continue
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        phases[phase].modules.append((name, int(self_us) / 1000))
    del phases["runtime"]
    return phases


def interpreter_startup(python: str, flags: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([python, *flags, "-c", "pass"], check=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="the interpreter of the cold starts (default: this one)")
    parser.add_argument("--build", action="append", type=Path, help="a `sam build` output directory")
    parser.add_argument("--source", action="store_true", help="the source tree too (default: when no build)")
    parser.add_argument("--runs", type=int, default=5, help="cold starts per function, mode and code")
    parser.add_argument("--top", type=int, default=12, help="modules listed from -X importtime")
    parser.add_argument("--function", action="append", help="only these functions (logical ids)")
    parser.add_argument("--mode", action="append", choices=MODES, help="only these modes")
    options = parser.parse_args()

    python = options.python or sys.executable
    builds: list[Path] = options.build or []
    default_build = ROOT / ".aws-sam" / "build"
    if not builds and options.python and (default_build / "BatchopsLayer").is_dir():
        builds = [default_build]
    codes = [Code("source tree", None)] if options.source or not builds else []
    codes += [Code(str(build), build) for build in builds]
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    functions = [f for f in FUNCTIONS if not options.function or f.name in options.function]
    modes = options.mode or list(MODES)

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    os.environ.pop("AWS_PROFILE", None)
    xray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    xray.bind(("127.0.0.1", 0))
    xray.setblocking(False)
    xray_port = xray.getsockname()[1]
    server, moto = start_moto()
    rows: list[dict[str, Any]] = []
    try:
        startup = interpreter_startup(python, codes[0].flags, options.runs)
        for function in functions:
            for mode in modes:
                runs: dict[Code, list[dict[str, Any]]] = {code: [] for code in codes}
                for _ in range(options.runs):
                    for code in codes:
                        env = child_environment(
                            function, code, mode, moto, run=prepare_run(function, moto), xray=xray_port
                        )
                        drain(xray)
                        measured, _ = run_child(python, code, function, env)
                        time.sleep(0.05)  # the tracer's last datagrams
                        measured["xray_datagrams"] = drain(xray)
                        check(function, measured.pop("result"))
                        runs[code].append(measured)
                for code in codes:
                    env = child_environment(
                        function, code, mode, moto, run=prepare_run(function, moto), xray=xray_port
                    )
                    _, stderr = run_child(python, code, function, env, importtime=True)
                    drain(xray)
                    rows.append(
                        summarise(
                            function, code, mode, runs[code], imports=import_phases(stderr), top=options.top
                        )
                    )
    finally:
        server.stop()
        xray.close()

    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform(terse=True)}",
        "python": version,
        "codes": [{"code": code.label, "pyc_files_shipped": code.pyc_files} for code in codes],
        "runs": options.runs,
        "interpreter_startup_ms": round(startup, 1),
        "functions": rows,
    }
    print(json.dumps(report, indent=2))
    print_markdown(report)
    return 0


def summarise(
    function: Function,
    code: Code,
    mode: str,
    runs: list[dict[str, Any]],
    *,
    imports: dict[str, Imports],
    top: int,
) -> dict[str, Any]:
    def median(key: str) -> float:
        return round(float(statistics.median(r[key] for r in runs)), 1)

    def listed(entries: list[tuple[str, float]]) -> list[list[Any]]:
        return [[name, round(ms, 1)] for name, ms in entries]

    return {
        "function": function.name,
        "code": code.label,
        "mode": mode,
        "event": f"{function.directory}/{function.event}",
        "init_ms": median("init_ms"),
        "init_ms_min": round(min(r["init_ms"] for r in runs), 1),
        "first_invoke_ms": median("invoke_ms"),
        "init_plus_invoke_ms": round(statistics.median(r["init_ms"] + r["invoke_ms"] for r in runs), 1),
        "process_ms": median("process_ms"),
        "xray_datagrams": statistics.median(r["xray_datagrams"] for r in runs),
        "importtime": {
            phase: {
                "modules": len(found.modules),
                "total_self_ms": round(found.total_ms, 1),
                "top_packages": listed(found.top_packages(top)),
                "top_modules": listed(found.top_modules(top)),
            }
            for phase, found in imports.items()
        },
    }


def print_markdown(report: dict[str, Any]) -> None:
    codes = report["codes"]
    shipped = "; ".join(
        code["code"]
        + ("" if code["pyc_files_shipped"] is None else f" ({code['pyc_files_shipped']} .pyc files)")
        for code in codes
    )
    print(
        f"\nCold starts, {report['date']}, {report['machine']}, Python {report['python']}, {shipped}; "
        f"median of {report['runs']} fresh processes each (interpreter start-up alone "
        f"{report['interpreter_startup_ms']} ms, not included).\n"
    )
    first = {(r["function"], r["mode"]): r for r in report["functions"] if r["code"] == codes[0]["code"]}
    print(
        "| function | tracing | code | import + init ms | first invoke ms | init + invoke ms "
        "| init vs first code | process ms | X-Ray datagrams |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in report["functions"]:
        ratio = r["init_ms"] / first[(r["function"], r["mode"])]["init_ms"]
        print(
            f"| {r['function']} | {r['mode']} | {r['code']} | {r['init_ms']:.0f} | {r['first_invoke_ms']:.0f} "
            f"| {r['init_plus_invoke_ms']:.0f} | {ratio:.2f} | {r['process_ms']:.0f} | {r['xray_datagrams']:.0f} |"
        )
    for r in report["functions"]:
        print(
            f"\n{r['function']} ({r['mode']}, {r['code']}), -X importtime (one more run; it slows imports down):"
        )
        for phase, label in (("init", "initialising"), ("invoke", "first invoking")):
            found = r["importtime"][phase]
            print(f"  while {label}: {found['modules']} modules, {found['total_self_ms']} ms self time")
            packages = ", ".join(f"{name} {ms}" for name, ms in found["top_packages"])
            modules = ", ".join(f"{name} {ms}" for name, ms in found["top_modules"])
            print(f"    by package (ms): {packages}")
            print(f"    by module (ms):  {modules}")


if __name__ == "__main__":
    sys.exit(main())
