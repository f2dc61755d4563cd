"""AWS clients as entry points build them: retry mode and timeouts set explicitly.

botocore's default retry mode changed between releases (legacy/5 -> standard/3), so batchops
never relies on it. ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` are honoured by
boto3 itself, which is how the same code talks to moto, MinIO or Ceph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sts.client import STSClient

STORE_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
)


def dynamodb_client() -> DynamoDBClient:
    return boto3.client("dynamodb", config=STORE_CLIENT_CONFIG)


def s3_config(max_pool_connections: int, addressing_style: str = "auto") -> Config:
    """How every S3 client of the engine is configured (boto3 clients are thread-safe and shared).

    The connection pool matches the tasks that may be in flight at once; standard retries with
    five attempts absorb S3's 503 SlowDown while it scales a prefix.
    """
    return Config(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=max_pool_connections,
        connect_timeout=5,
        read_timeout=60,
        s3={"addressing_style": addressing_style},  # type: ignore[arg-type]
    )


def s3_client(max_pool_connections: int, addressing_style: str = "auto") -> S3Client:
    return boto3.client("s3", config=s3_config(max_pool_connections, addressing_style))


def sts_client() -> STSClient:
    return boto3.client("sts", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def sqs_client() -> SQSClient:
    return boto3.client("sqs", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def secretsmanager_client() -> SecretsManagerClient:
    """For API keys kept in a secret: short timeouts, since a request waits on the read."""
    return boto3.client("secretsmanager", config=STORE_CLIENT_CONFIG)
