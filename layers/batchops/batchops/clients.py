"""AWS clients as entry points build them: retry mode and timeouts set explicitly.

botocore's default retry mode changed between releases (legacy/5 -> standard/3), so batchops
never relies on it. ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` are honoured by
botocore itself, which is how the same code talks to moto, MinIO or Ceph.

Every client comes from one botocore session per process, so the endpoint and partition data
it loads are loaded once. DynamoDB, SQS, STS and S3 Control clients are botocore's own: boto3
adds nothing to them but its import, which brings s3transfer and multiprocessing with it. S3
clients are boto3's (on the same session), for the managed transfers (``upload_file``) that
reports and filtered manifests use; boto3 is imported when the first one is built.

``lazy`` defers building a client to its first use: the Lambda handlers wire everything at
import, and a client an invocation never touches then costs nothing at cold start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from botocore.config import Config

if TYPE_CHECKING:
    import boto3.session
    import botocore.session
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3control.client import S3ControlClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sts.client import STSClient

STORE_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
)
# STS and SQS: the calls that hand work on and assume jobs' roles retry longer than the store's.
CONTROL_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})

T = TypeVar("T")

# botocore sessions are not thread-safe (clients are): every client is built under this lock,
# since a lazy client may first be used from a worker thread.
_building = threading.RLock()
_sessions: dict[str, Any] = {}


def _botocore_session() -> botocore.session.Session:
    with _building:
        if "botocore" not in _sessions:
            # Imported with the first client: the session and client machinery (waiters,
            # paginators, docs) costs tens of ms more than the botocore.config that init needs.
            import botocore.session  # noqa: PLC0415

            _sessions["botocore"] = botocore.session.get_session()
        session: botocore.session.Session = _sessions["botocore"]
        return session


def _boto3_session() -> boto3.session.Session:
    with _building:
        if "boto3" not in _sessions:
            # Only what builds S3 clients pays for boto3 (and the s3transfer it imports), when it
            # builds the first one.
            import boto3.session  # noqa: PLC0415

            _sessions["boto3"] = boto3.session.Session(botocore_session=_botocore_session())
        session: boto3.session.Session = _sessions["boto3"]
        return session


def _client(service: str, config: Config | None = None) -> Any:
    with _building:
        return _botocore_session().create_client(service, config=config)


def dynamodb_client() -> DynamoDBClient:
    return cast("DynamoDBClient", _client("dynamodb", STORE_CLIENT_CONFIG))


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
    return s3_client_with(s3_config(max_pool_connections, addressing_style))


def s3_client_with(config: Config | None = None, credentials: Mapping[str, Any] | None = None) -> S3Client:
    """A boto3 S3 client: ``config`` (default: botocore's), ``credentials`` (default: the
    environment's) as STS returns them (AccessKeyId, SecretAccessKey, SessionToken)."""
    keys = (
        {}
        if credentials is None
        else {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }
    )
    with _building:
        return _boto3_session().client("s3", config=config, **keys)


def sts_client() -> STSClient:
    return cast("STSClient", _client("sts", CONTROL_CLIENT_CONFIG))


def sqs_client() -> SQSClient:
    return cast("SQSClient", _client("sqs", CONTROL_CLIENT_CONFIG))


def s3control_client() -> S3ControlClient:
    return cast("S3ControlClient", _client("s3control"))


class _Deferred:
    """Stands for a client until it is first used; then builds it and is it, attribute by attribute."""

    def __init__(self, build: Callable[[], object]) -> None:
        self._build = build
        self._built: object | None = None

    def __getattr__(self, name: str) -> Any:
        built = self._built
        if built is None:
            with _building:
                if self._built is None:
                    self._built = self._build()
                built = self._built
        return getattr(built, name)

    def __repr__(self) -> str:
        return f"lazy({self._built if self._built is not None else self._build!r})"


def lazy(build: Callable[[], T]) -> T:
    """What ``build()`` returns, built on first use instead of now.

    For clients wired at a Lambda function's cold start: building one loads its service model
    and, for the first, the endpoint data (tens of ms each). Settings are still read and checked
    at once; only the client waits.
    """
    return cast("T", _Deferred(build))


def secretsmanager_client() -> SecretsManagerClient:
    """For API keys kept in a secret: short timeouts, since a request waits on the read."""
    return cast("SecretsManagerClient", _client("secretsmanager", STORE_CLIENT_CONFIG))
