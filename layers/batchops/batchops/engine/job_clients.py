"""Which credentials a job's S3 calls use, and through which client.

Deployed, a job acts as its RoleArn: the worker assumes that role (STS AssumeRole) and makes every
S3 call of the job with the role's credentials (reading the manifest, the operations, writing the
report), never with its own. So a job can touch only what its role allows, and the worker's own
role needs nothing but sts:AssumeRole. Embedded (a laptop, MinIO), there is no role to assume:
every job uses the one client boto3 was configured for. Either way, ``LeanClients`` can put the
lean S3 client (batchops.s3fast) in front of the job's boto3 client.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from botocore.config import Config

from batchops.clients import s3_client_with
from batchops.jobs.model import Job
from batchops.s3fast import lean_s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sts.client import STSClient

IAM_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/")
SESSION_SECONDS = 3600
RENEW_BEFORE_SECONDS = 300


class JobRoleError(Exception):
    """The job's role cannot be assumed (not an IAM role, or STS refused)."""


class JobClients(Protocol):
    def s3_for(self, job: Job) -> S3Client:
        """The S3 client the job's calls go through."""


class SharedClients:
    """Every job uses one client (embedded mode)."""

    def __init__(self, s3: S3Client) -> None:
        self._s3 = s3

    def s3_for(self, job: Job) -> S3Client:
        return self._s3


class AssumedRoleClients:
    """One S3 client per job role, on credentials from STS AssumeRole, renewed before they expire."""

    def __init__(
        self,
        sts: STSClient,
        config: Config,
        clock: Callable[[], float] = time.time,
        session_prefix: str = "batchops",
    ) -> None:
        self._sts = sts
        self._config = config
        self._clock = clock
        self._prefix = session_prefix
        self._clients: dict[str, tuple[S3Client, float]] = {}
        self._lock = threading.Lock()

    def s3_for(self, job: Job) -> S3Client:
        role = job.spec.role_arn
        if not IAM_ROLE.match(role):
            raise JobRoleError(f"RoleArn {role!r} is not an IAM role this deployment can assume")
        with self._lock:
            cached = self._clients.get(role)
            if cached is not None and cached[1] - RENEW_BEFORE_SECONDS > self._clock():
                return cached[0]
            try:
                credentials = self._sts.assume_role(
                    RoleArn=role,
                    RoleSessionName=f"{self._prefix}-{job.job_id}"[:64],
                    DurationSeconds=SESSION_SECONDS,
                )["Credentials"]
            except Exception as exc:
                raise JobRoleError(f"the job's role {role} could not be assumed: {exc}") from exc
            client = s3_client_with(self._config, credentials)
            self._clients[role] = (client, credentials["Expiration"].timestamp())
            return client


class LeanClients:
    """The jobs' clients of ``inner``, each behind a lean client (one per boto3 client)."""

    MAX_CLIENTS = 64
    """Assumed-role clients are renewed hourly: old ones (and their lean fronts) are let go."""

    def __init__(self, inner: JobClients) -> None:
        self.inner = inner
        self._lean: OrderedDict[int, tuple[S3Client, S3Client]] = OrderedDict()
        self._lock = threading.Lock()

    def s3_for(self, job: Job) -> S3Client:
        client = self.inner.s3_for(job)
        with self._lock:
            cached = self._lean.get(id(client))
            if cached is not None and cached[0] is client:
                self._lean.move_to_end(id(client))
                return cached[1]
            lean = lean_s3_client(client)
            self._lean[id(client)] = (client, lean)
            while len(self._lean) > self.MAX_CLIENTS:
                self._lean.popitem(last=False)
            return lean
