"""Settings read from the environment: credentials and their tenants."""

from __future__ import annotations

import pytest

from batchops.api.auth import Principal
from batchops.settings import LocalSettings, SettingsError


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


def test_run_job_spaces_its_status_looks_by_the_worker_concurrency() -> None:
    from batchops.settings import RunJobSettings

    base = {"JOBS_TABLE": "t", "WORK_QUEUE_URL": "q"}
    # the stack passes WorkerConcurrency; without it, the most an event source allows
    assert RunJobSettings.from_env({**base, "BATCHOPS_WORKER_CONCURRENCY": "50"}).engine.job_concurrency == 50
    assert RunJobSettings.from_env(base).engine.job_concurrency == 1000
    with pytest.raises(SettingsError, match="BATCHOPS_WORKER_CONCURRENCY"):
        RunJobSettings.from_env({**base, "BATCHOPS_WORKER_CONCURRENCY": "0"})
