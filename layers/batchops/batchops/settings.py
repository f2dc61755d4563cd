"""Settings of each entry point, read from the environment once, at start.

Only entry points (Lambda handlers, the CLI) call ``from_env``; everything below them receives
values. A bad value fails at once with a message naming the variable and the value.

What only some entry points need (the engine's settings, the submit rules and their checks) is
imported by the ``from_env`` that needs it, so that a Lambda function's cold start imports only
its own part of batchops.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from batchops.api.auth import Principal
from batchops.api.credentials import (
    DEFAULT_MAX_AGE_SECONDS,
    CredentialsFormatError,
    CredentialsSecret,
    parse_credentials,
)

if TYPE_CHECKING:
    from batchops.engine.settings import EngineSettings
    from batchops.submit.rules import Rule

DEFAULT_DB = Path(".batchops") / "batchops.db"
DEFAULT_MAX_ACTIVE_JOBS = 1000
DEFAULT_APPID = "1250000000"
DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
MAX_CHUNK_TASKS = 1000  # a chunk's outcomes must fit one DynamoDB item
MAX_WORKER_CONCURRENCY = 1000  # the most an SQS event source's MaximumConcurrency allows


class SettingsError(ValueError):
    """An environment variable holds a value batchops cannot use."""


@dataclass(frozen=True)
class JobsApiSettings:
    """The jobs API Lambda function (`functions/jobs_api`)."""

    jobs_table: str
    max_active_jobs: int
    work_queue_url: str | None
    """Where job work is sent (the run_job queue); without it jobs are created but never run."""
    credentials: dict[str, Principal]
    """With keys, every request must also carry a COS signature by one of them."""
    credentials_secret: CredentialsSecret | None = None
    """Or the keys are kept in Secrets Manager."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JobsApiSettings:
        return cls(
            credentials=_credentials(env),
            credentials_secret=_credentials_secret(env),
            jobs_table=_required(env, "JOBS_TABLE"),
            max_active_jobs=_positive_int(env, "BATCHOPS_MAX_ACTIVE_JOBS", DEFAULT_MAX_ACTIVE_JOBS),
            work_queue_url=env.get("WORK_QUEUE_URL") or None,
        )


@dataclass(frozen=True)
class RunJobSettings:
    """The job-running Lambda function (`functions/run_job`)."""

    jobs_table: str
    work_queue_url: str
    max_active_jobs: int
    engine: EngineSettings
    s3_addressing_style: str
    deadline_margin_seconds: float
    assume_job_role: bool
    """Act as each job's RoleArn (STS AssumeRole) instead of the function's own role."""
    sweep_stale_seconds: int
    """The sweeper re-sends work for jobs unchanged this long."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunJobSettings:
        return cls(
            jobs_table=_required(env, "JOBS_TABLE"),
            work_queue_url=_required(env, "WORK_QUEUE_URL"),
            max_active_jobs=_positive_int(env, "BATCHOPS_MAX_ACTIVE_JOBS", DEFAULT_MAX_ACTIVE_JOBS),
            # One chunk per invocation: Lambda concurrency is the number of workers.
            engine=replace(
                _engine_settings(env, workers=1),
                job_concurrency=_positive_int(env, "BATCHOPS_WORKER_CONCURRENCY", MAX_WORKER_CONCURRENCY),
            ),
            s3_addressing_style=_addressing_style(env),
            deadline_margin_seconds=_positive_int(env, "BATCHOPS_DEADLINE_MARGIN_SECONDS", 60),
            assume_job_role=_boolean(env, "BATCHOPS_ASSUME_JOB_ROLE", default=False),
            sweep_stale_seconds=_positive_int(env, "BATCHOPS_SWEEP_STALE_SECONDS", 600),
        )


@dataclass(frozen=True)
class LocalSettings:
    """The `batchops` command in embedded mode."""

    db_path: Path
    max_active_jobs: int
    appid: str
    endpoint: str
    engine: EngineSettings
    s3_addressing_style: str
    credentials: dict[str, Principal]
    """Access key id -> who signs with it; `batchops serve` accepts only their signatures (none: open)."""
    secret_id: str | None
    secret_key: str | None
    """What `batchops jobs` and `batchops submit` sign with."""
    credentials_secret: str | None = None
    """`batchops serve` reads its keys from this secret instead (its `--credentials-secret`)."""
    credentials_secret_max_age: int = DEFAULT_MAX_AGE_SECONDS
    processes: int = 1
    """`batchops run`: worker processes on the one store (BATCHOPS_PROCESSES), each with the
    engine's workers: the embedded engine's way to more than one core."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LocalSettings:
        secret_id, secret_key = env.get("BATCHOPS_SECRET_ID") or None, env.get("BATCHOPS_SECRET_KEY") or None
        if (secret_id is None) != (secret_key is None):
            raise SettingsError("BATCHOPS_SECRET_ID and BATCHOPS_SECRET_KEY go together")
        secret = _credentials_secret(env)
        return cls(
            credentials=_credentials(env),
            credentials_secret=secret.secret_id if secret else None,
            credentials_secret_max_age=_credentials_secret_max_age(env),
            secret_id=secret_id,
            secret_key=secret_key,
            db_path=Path(env.get("BATCHOPS_DB") or DEFAULT_DB),
            max_active_jobs=_positive_int(env, "BATCHOPS_MAX_ACTIVE_JOBS", DEFAULT_MAX_ACTIVE_JOBS),
            appid=env.get("BATCHOPS_APPID") or DEFAULT_APPID,
            endpoint=env.get("BATCHOPS_ENDPOINT") or DEFAULT_ENDPOINT,
            engine=_engine_settings(env, workers=None),
            s3_addressing_style=_addressing_style(env),
            processes=_positive_int(env, "BATCHOPS_PROCESSES", 1),
        )


def _engine_settings(env: Mapping[str, str], workers: int | None) -> EngineSettings:
    """``workers`` None: BATCHOPS_WORKERS, else the engine's default."""
    from batchops.engine.settings import EngineSettings  # noqa: PLC0415 - see the module's docstring
    from batchops.ops.copy import CopySettings  # noqa: PLC0415

    defaults = EngineSettings()
    return EngineSettings(
        workers=_positive_int(env, "BATCHOPS_WORKERS", defaults.workers) if workers is None else workers,
        task_concurrency=_positive_int(env, "BATCHOPS_TASK_CONCURRENCY", defaults.task_concurrency),
        chunk_max_tasks=min(
            _positive_int(env, "BATCHOPS_CHUNK_SIZE", defaults.chunk_max_tasks), MAX_CHUNK_TASKS
        ),
        copy=CopySettings(
            multipart_threshold=_positive_int(
                env, "BATCHOPS_MULTIPART_THRESHOLD", defaults.copy.multipart_threshold
            ),
            part_size=_positive_int(env, "BATCHOPS_PART_SIZE", defaults.copy.part_size),
        ),
        s3_client=_s3_client(env, defaults.s3_client),
    )


def _s3_client(env: Mapping[str, str], default: str) -> str:
    kind = (env.get("BATCHOPS_S3_CLIENT") or default).strip().lower()
    if kind not in ("lean", "boto3"):
        raise SettingsError(
            f"BATCHOPS_S3_CLIENT must be lean or boto3, not {env.get('BATCHOPS_S3_CLIENT')!r}"
        )
    return kind


def _addressing_style(env: Mapping[str, str]) -> str:
    style = env.get("BATCHOPS_S3_ADDRESSING_STYLE") or "auto"
    if style not in ("auto", "path", "virtual"):
        raise SettingsError(f"BATCHOPS_S3_ADDRESSING_STYLE must be auto, path or virtual, not {style!r}")
    return style


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false"):
        raise SettingsError(f"{name} must be true or false, not {env.get(name)!r}")
    return raw == "true"


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} must be set")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    if not re.fullmatch(r"[0-9]{1,15}", raw.strip()) or int(raw) < 1:
        raise SettingsError(f"{name} must be a positive integer, not {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class SubmitSettings:
    """The submit function (`functions/submit_job`) and `batchops submit`."""

    rules: list[Rule]
    target: str
    """``direct`` (the job service on JOBS_TABLE) or ``http`` (POST /jobs to BATCHOPS_ENDPOINT)."""
    jobs_table: str | None
    work_queue_url: str | None
    endpoint: str
    secret_id: str | None
    secret_key: str | None
    max_active_jobs: int
    account_id: str | None
    """The AWS account of S3 Batch Operations jobs (the s3control target)."""
    sweep_max_age_hours: int

    @classmethod
    def from_env(cls, env: Mapping[str, str], default_target: str = "direct") -> SubmitSettings:
        from batchops.submit.errors import RuleError  # noqa: PLC0415 - see the module's docstring
        from batchops.submit.rules import rules_from_env  # noqa: PLC0415
        from batchops.submit.s3control import TranslationError, to_create_job  # noqa: PLC0415

        try:
            rules = rules_from_env(env, env.get("BATCHOPS_APPID") or DEFAULT_APPID)
        except RuleError as exc:
            raise SettingsError(str(exc)) from exc
        if not rules:
            raise SettingsError(
                "no submit rules: set BATCHOPS_RULES, or BATCHOPS_OPERATION and the flat rule variables"
            )
        target = env.get("BATCHOPS_TARGET") or default_target
        if target not in ("direct", "http", "s3control"):
            raise SettingsError(f"BATCHOPS_TARGET must be direct, http or s3control, not {target!r}")
        account_id = env.get("BATCHOPS_ACCOUNT_ID") or None
        if target == "s3control":
            if account_id is None or not re.fullmatch(r"[0-9]{12}", account_id):
                raise SettingsError(
                    f"BATCHOPS_TARGET=s3control needs BATCHOPS_ACCOUNT_ID (12 digits), not {account_id!r}"
                )
            for rule in rules:
                try:
                    to_create_job(rule.sample_spec(), account_id)
                except TranslationError as exc:
                    raise SettingsError(
                        f"rule {rule.name!r}: S3 Batch Operations cannot run it: {exc}"
                    ) from exc
        if target == "direct" and not env.get("JOBS_TABLE"):
            raise SettingsError("BATCHOPS_TARGET=direct needs JOBS_TABLE")
        secret_id, secret_key = env.get("BATCHOPS_SECRET_ID") or None, env.get("BATCHOPS_SECRET_KEY") or None
        if (secret_id is None) != (secret_key is None):
            raise SettingsError("BATCHOPS_SECRET_ID and BATCHOPS_SECRET_KEY go together")
        return cls(
            rules=rules,
            target=target,
            jobs_table=env.get("JOBS_TABLE") or None,
            work_queue_url=env.get("WORK_QUEUE_URL") or None,
            endpoint=env.get("BATCHOPS_ENDPOINT") or DEFAULT_ENDPOINT,
            secret_id=secret_id,
            secret_key=secret_key,
            max_active_jobs=_positive_int(env, "BATCHOPS_MAX_ACTIVE_JOBS", DEFAULT_MAX_ACTIVE_JOBS),
            account_id=account_id,
            sweep_max_age_hours=_positive_int(env, "BATCHOPS_SWEEP_MAX_AGE_HOURS", 48),
        )


def _credentials(env: Mapping[str, str]) -> dict[str, Principal]:
    """BATCHOPS_CREDENTIALS: {"<key id>": "<secret>"} or, to bind a key to a tenant,
    {"<key id>": {"secret": ..., "appid": ..., "uin": ..., "roles": [...], "buckets": [...]}}."""
    raw = env.get("BATCHOPS_CREDENTIALS", "").strip()
    if not raw:
        return {}
    if env.get("BATCHOPS_CREDENTIALS_SECRET", "").strip():
        raise SettingsError(
            "BATCHOPS_CREDENTIALS and BATCHOPS_CREDENTIALS_SECRET are alternatives: set one of them"
        )
    try:
        return parse_credentials(raw, "BATCHOPS_CREDENTIALS")
    except CredentialsFormatError as exc:
        raise SettingsError(str(exc)) from None


def _credentials_secret(env: Mapping[str, str]) -> CredentialsSecret | None:
    """BATCHOPS_CREDENTIALS_SECRET: a Secrets Manager secret (ARN or name) whose SecretString is
    the BATCHOPS_CREDENTIALS JSON, re-read every BATCHOPS_CREDENTIALS_SECRET_MAX_AGE seconds."""
    secret_id = env.get("BATCHOPS_CREDENTIALS_SECRET", "").strip()
    return CredentialsSecret(secret_id, _credentials_secret_max_age(env)) if secret_id else None


def _credentials_secret_max_age(env: Mapping[str, str]) -> int:
    return _positive_int(env, "BATCHOPS_CREDENTIALS_SECRET_MAX_AGE", DEFAULT_MAX_AGE_SECONDS)
