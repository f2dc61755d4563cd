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

STORE_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
)


def dynamodb_client() -> DynamoDBClient:
    return boto3.client("dynamodb", config=STORE_CLIENT_CONFIG)
