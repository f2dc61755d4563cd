"""Measuring a peer: one subprocess, its CPU, wall time, peak memory and TCP connects; the stub it talks to.

How, and why (shared/reference/performance.md):

- CPU is the child's own rusage from ``os.wait4`` (user + system), so nothing in this process
  (or the stub) is counted.
- Peak RSS is ``VmHWM`` polled from ``/proc/PID/status`` while the child runs. Not ``ru_maxrss``
  of a forked child: Linux carries the parent's RSS over across ``exec``.
- New TCP connections are the ``/proc/net/snmp`` ActiveOpens delta around the run. It counts the
  whole machine (other work adds to it), so the stub's own count of connections opened is the
  exact figure and this one the cross-check.
- Every run has a deadline; a child still running then is killed with its process group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

POLL_SECONDS = 0.01
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Measurement:
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    exit_code: int
    timed_out: bool
    tcp_active_opens: int
    stderr_tail: str
    stdout: str = ""
    """What the child printed, when asked for (``capture_stdout``)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def tcp_active_opens() -> int:
    """The machine's TCP ActiveOpens counter (connections this host initiated)."""
    lines = [
        line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Tcp:")
    ]
    names, values = lines[0], lines[1]
    return int(values[names.index("ActiveOpens")])


def vm_hwm_mib(pid: int) -> float:
    """A running process's peak RSS so far, or 0 once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_measured(
    cmd: Sequence[str],
    env: Mapping[str, str],
    timeout: float,
    cwd: Path | None = None,
    *,
    capture_stdout: bool = False,
) -> Measurement:
    """Run ``cmd`` to completion (or its deadline) and measure it; stdout is discarded unless captured."""
    with tempfile.TemporaryFile() as stderr, tempfile.TemporaryFile() as stdout:
        opens_before = tcp_active_opens()
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout if capture_stdout else subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        peak = 0.0
        timed_out = False
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, vm_hwm_mib(proc.pid))
            if time.perf_counter() > deadline:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(POLL_SECONDS)
        wall = time.perf_counter() - started
        opens = tcp_active_opens() - opens_before
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        stderr.seek(0)
        tail = stderr.read()[-2000:].decode("utf-8", "replace")
        stdout.seek(0)
        printed = stdout.read().decode("utf-8", "replace")
    return Measurement(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=peak,
        exit_code=proc.returncode,
        timed_out=timed_out,
        tcp_active_opens=opens,
        stderr_tail=tail,
        stdout=printed,
    )


def peer_env(endpoint: str, home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a peer: fake credentials, the stub as endpoint, no user config.

    Nothing of the caller's AWS setup leaks in (a profile, a CA bundle, a real endpoint).
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


class StubServer:
    """The stub S3 endpoint (``tests/bench/stub_s3.py``) as a subprocess, stopped by its PID."""

    def __init__(self, objects_dir: Path, *, keep_puts: bool = True) -> None:
        args = [sys.executable, "-m", "tests.bench.stub_s3", "--port", "0", "--objects", str(objects_dir)]
        if keep_puts:
            args.append("--keep-puts")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"the stub S3 endpoint did not start (it printed {line!r})")
        self.port = int(line)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def _call(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.endpoint}{path}" + (f"?{urlencode(params)}" if params else "")
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=10) as response:  # 127.0.0.1 only
            data: dict[str, Any] = json.loads(response.read())
        return data

    def s3_client(self) -> S3Client:
        """A boto3 S3 client on the stub (path-style, fake keys), for reading back what was written."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 3}),
        )

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/__stats")

    def reset(self) -> None:
        self._call("POST", "/__reset")

    def configure(self, **settings: Any) -> dict[str, Any]:
        return self._call("POST", "/__config", settings)
