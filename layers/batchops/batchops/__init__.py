"""batchops: batch operations for S3-compatible object storage, speaking the COS jobs API."""

__version__ = "0.1.0"
