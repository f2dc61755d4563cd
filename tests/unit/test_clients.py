"""Clients as entry points build them: lazily, and S3 clients with boto3's managed transfers."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from batchops.clients import dynamodb_client, lazy, s3_client_with, s3_config


class Built:
    def __init__(self) -> None:
        self.value = 42

    def double(self) -> int:
        return self.value * 2


def test_a_lazy_client_is_built_on_first_use_and_once() -> None:
    builds: list[Built] = []

    def build() -> Built:
        builds.append(Built())
        return builds[-1]

    # GIVEN a lazy client WHEN nothing is used THEN nothing is built
    client = lazy(build)
    assert builds == []
    # WHEN it is used THEN it is built, once, and answers as the built object does
    assert client.double() == 84
    assert client.value == 42
    assert len(builds) == 1


def test_threads_first_using_a_lazy_client_together_share_one_build() -> None:
    builds: list[Built] = []
    started = threading.Barrier(8)

    def build() -> Built:
        time.sleep(0.05)  # wide enough for every thread to arrive while the first builds
        builds.append(Built())
        return builds[-1]

    client = lazy(build)

    def use(_: int) -> int:
        started.wait()
        return client.double()

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(use, range(8))) == [84] * 8
    assert len(builds) == 1


def test_s3_clients_have_managed_transfers_and_the_credentials_given() -> None:
    # Reports and filtered manifests are written with upload_file, which boto3 adds to S3 clients.
    client = s3_client_with(
        s3_config(4, "path"),
        {"AccessKeyId": "AKIDrole", "SecretAccessKey": "secret", "SessionToken": "token"},
    )
    assert callable(client.upload_file)
    credentials = client._request_signer._credentials  # type: ignore[attr-defined]
    assert (credentials.access_key, credentials.token) == ("AKIDrole", "token")
    config = vars(client.meta.config)  # botocore sets a Config's options as instance attributes
    assert (config["s3"], config["max_pool_connections"]) == ({"addressing_style": "path"}, 4)


def test_store_clients_keep_their_explicit_retries() -> None:
    config = vars(dynamodb_client().meta.config)
    # max_attempts 3 in the Config means 3 retries: botocore counts the first try too.
    assert config["retries"] == {"mode": "standard", "total_max_attempts": 4}
    assert (config["connect_timeout"], config["read_timeout"]) == (2, 5)
