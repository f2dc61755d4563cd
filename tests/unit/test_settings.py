"""Settings read from the environment: credentials and their tenants, engine settings (the
engine's S3 client among them), submit rules."""

from __future__ import annotations

import pytest

from batchops.api.auth import Principal
from batchops.settings import LocalSettings, RunJobSettings, SettingsError, SubmitSettings


def test_credentials_may_be_secrets_or_tenants() -> None:
    settings = LocalSettings.from_env(
        {
            "BATCHOPS_CREDENTIALS": '{"AKIDopen": "s1", "AKIDtenant": {"secret": "s2", "appid": "1250000000",'
            ' "uin": "100000000001", "roles": ["qcs::cam::uin/100000000001:roleName/r"], "buckets": ["shared"]}}'
        }
    )
    assert settings.credentials == {
        "AKIDopen": Principal("AKIDopen", "s1"),
        "AKIDtenant": Principal(
            "AKIDtenant",
            "s2",
            appid="1250000000",
            uin="100000000001",
            roles=frozenset({"qcs::cam::uin/100000000001:roleName/r"}),
            buckets=frozenset({"shared"}),
        ),
    }


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("not json", "JSON object"),
        ('{"AKID": {"appid": "1"}}', "at least a secret"),
        ('{"AKID": {"secret": "s", "colour": "red"}}', "'colour' is not a credential field"),
        ('{"AKID": {"secret": "s", "roles": "r"}}', "roles must be a list"),
    ],
)
def test_bad_credentials_are_named(value: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        LocalSettings.from_env({"BATCHOPS_CREDENTIALS": value})


def test_a_credentials_secret_is_named_by_arn_or_name_with_a_max_age() -> None:
    from batchops.api.credentials import CredentialsSecret
    from batchops.settings import JobsApiSettings

    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:batchops/keys-AbCdEf"
    jobs_api = JobsApiSettings.from_env({"JOBS_TABLE": "t", "BATCHOPS_CREDENTIALS_SECRET": arn})
    assert jobs_api.credentials_secret == CredentialsSecret(arn, 300)
    assert jobs_api.credentials == {}
    local = LocalSettings.from_env(
        {"BATCHOPS_CREDENTIALS_SECRET": "batchops/keys", "BATCHOPS_CREDENTIALS_SECRET_MAX_AGE": "60"}
    )
    assert (local.credentials_secret, local.credentials_secret_max_age) == ("batchops/keys", 60)
    assert JobsApiSettings.from_env({"JOBS_TABLE": "t"}).credentials_secret is None


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        (
            {"BATCHOPS_CREDENTIALS": '{"AKID": "s"}', "BATCHOPS_CREDENTIALS_SECRET": "batchops/keys"},
            "alternatives",
        ),
        (
            {"BATCHOPS_CREDENTIALS_SECRET": "batchops/keys", "BATCHOPS_CREDENTIALS_SECRET_MAX_AGE": "0"},
            "BATCHOPS_CREDENTIALS_SECRET_MAX_AGE must be a positive integer",
        ),
    ],
)
def test_bad_credentials_secret_settings_are_named(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        LocalSettings.from_env(env)


@pytest.mark.parametrize(
    ("value", "kind"), [(None, "lean"), ("", "lean"), ("boto3", "boto3"), (" Lean ", "lean")]
)
def test_the_engines_s3_client(value: str | None, kind: str) -> None:
    env = {"JOBS_TABLE": "t", "WORK_QUEUE_URL": "q"} | (
        {"BATCHOPS_S3_CLIENT": value} if value is not None else {}
    )
    assert LocalSettings.from_env(env).engine.s3_client == kind
    assert RunJobSettings.from_env(env).engine.s3_client == kind


def test_an_unknown_s3_client_is_named() -> None:
    with pytest.raises(SettingsError, match="BATCHOPS_S3_CLIENT must be lean or boto3, not 'fast'"):
        LocalSettings.from_env({"BATCHOPS_S3_CLIENT": "fast"})


def test_run_job_spaces_its_status_looks_by_the_worker_concurrency() -> None:
    from batchops.settings import RunJobSettings

    base = {"JOBS_TABLE": "t", "WORK_QUEUE_URL": "q"}
    # the stack passes WorkerConcurrency; without it, the most an event source allows
    assert RunJobSettings.from_env({**base, "BATCHOPS_WORKER_CONCURRENCY": "50"}).engine.job_concurrency == 50
    assert RunJobSettings.from_env(base).engine.job_concurrency == 1000
    with pytest.raises(SettingsError, match="BATCHOPS_WORKER_CONCURRENCY"):
        RunJobSettings.from_env({**base, "BATCHOPS_WORKER_CONCURRENCY": "0"})


def test_embedded_workers_come_from_the_environment_and_a_bad_count_is_named() -> None:
    # GIVEN BATCHOPS_WORKERS (read for `batchops run`, never for Lambda) WHEN read THEN it is used
    assert LocalSettings.from_env({"BATCHOPS_WORKERS": "3"}).engine.workers == 3
    # AND a value that is not a positive integer stops start-up, naming the variable
    with pytest.raises(SettingsError, match="BATCHOPS_WORKERS must be a positive integer"):
        LocalSettings.from_env({"BATCHOPS_WORKERS": "0"})


def test_run_job_runs_one_chunk_per_invocation_whatever_the_workers() -> None:
    env = {"JOBS_TABLE": "t", "WORK_QUEUE_URL": "q", "BATCHOPS_WORKERS": "8", "BATCHOPS_CHUNK_SIZE": "5000"}
    settings = RunJobSettings.from_env(env)
    assert settings.engine.workers == 1
    assert settings.engine.chunk_max_tasks == 1000  # a chunk's outcomes must fit one DynamoDB item


def test_a_bad_submit_rule_stops_start_up() -> None:
    with pytest.raises(SettingsError, match="no submit rules"):
        SubmitSettings.from_env({"JOBS_TABLE": "t"})
    with pytest.raises(SettingsError, match="BATCHOPS_RULES"):
        SubmitSettings.from_env({"JOBS_TABLE": "t", "BATCHOPS_RULES": "not json"})
