"""Per-object operations: each maps one task to S3 calls and one TaskOutcome."""
