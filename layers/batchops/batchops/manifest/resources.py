"""Resource names: the one parser for every bucket or object a job names.

Accepted spellings:

- ``qcs::cos:<region>:uid/<appid>:<bucket>[/<key>]``
- ``qcs::cos:<region>::<bucket>[/<key>]``
- ``arn:<partition>:s3:::<bucket>[/<key>]``

The key is everything after the first ``/`` following the bucket, taken verbatim (it may contain
further slashes, colons or spaces).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_QCS = re.compile(r"^qcs::cos:(?P<region>[^:]*):(?:uid/(?P<appid>[^:]*))?:(?P<rest>.*)$", re.DOTALL)
_ARN = re.compile(
    r"^arn:(?P<partition>[^:]+):s3:(?P<region>[^:]*):(?P<account>[^:]*):(?P<rest>.*)$", re.DOTALL
)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z0-9-]+$")
_APPID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_KEY_BYTES = 1024


class ResourceError(ValueError):
    """A resource name that cannot be used; the message says why, quoting the value."""


@dataclass(frozen=True)
class Resource:
    bucket: str
    key: str | None = None
    region: str | None = None
    appid: str | None = None

    @property
    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"


def parse_resource(text: str) -> Resource:
    """Parse a bucket or object resource name. Raises ResourceError with a clear message."""
    if m := _QCS.match(text):
        region = m["region"]
        if not _REGION.match(region):
            raise ResourceError(f"{text!r}: a qcs resource needs a region, as in qcs::cos:ap-beijing::bucket")
        appid = m["appid"]
        if appid is not None and not _APPID.match(appid):
            raise ResourceError(f"{text!r}: uid/<appid> must be 1-64 letters, digits, '-' or '_'")
        return _split(text, m["rest"], region=region, appid=appid)
    if m := _ARN.match(text):
        if m["region"] or m["account"]:
            raise ResourceError(
                f"{text!r}: an S3 bucket ARN has empty region and account, as in arn:aws:s3:::bucket"
            )
        return _split(text, m["rest"], region=None, appid=None)
    raise ResourceError(
        f"{text!r} is not a resource name; use qcs::cos:<region>:uid/<appid>:<bucket>[/<key>], "
        "qcs::cos:<region>::<bucket>[/<key>] or arn:aws:s3:::<bucket>[/<key>]"
    )


def parse_bucket(text: str) -> Resource:
    """Parse a resource that must name a bucket and nothing below it."""
    resource = parse_resource(text)
    if resource.key is not None:
        raise ResourceError(f"{text!r} names an object; a bucket is expected here")
    return resource


def parse_object(text: str) -> Resource:
    """Parse a resource that must name an object."""
    resource = parse_resource(text)
    if resource.key is None:
        raise ResourceError(f"{text!r} names a bucket; an object is expected here")
    return resource


def _split(text: str, rest: str, region: str | None, appid: str | None) -> Resource:
    bucket, slash, key = rest.partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ResourceError(
            f"{text!r}: bucket {bucket!r} is not a valid bucket name "
            "(3-63 lowercase letters, digits, '.' or '-')"
        )
    if not slash:
        return Resource(bucket=bucket, region=region, appid=appid)
    if not key:
        raise ResourceError(f"{text!r}: the object key after {bucket + '/'!r} is empty")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ResourceError(f"{text!r}: the object key is longer than {MAX_KEY_BYTES} bytes")
    return Resource(bucket=bucket, key=key, region=region, appid=appid)
