"""A lean S3 client for the executor's hot calls (see ``client``): boto3's semantics, less CPU."""

from batchops.s3fast.client import LeanS3Client, lean_s3_client

__all__ = ["LeanS3Client", "lean_s3_client"]
