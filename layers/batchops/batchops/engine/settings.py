"""How the engine runs: concurrency, leases, chunking, retries, the failure threshold."""

from __future__ import annotations

from dataclasses import dataclass, field

from batchops.ops.copy import CopySettings


@dataclass(frozen=True)
class EngineSettings:
    workers: int = 2
    """Chunks run at once by one process."""
    task_concurrency: int = 16
    """Tasks of one chunk in flight at once (the S3 connection pool is sized to match)."""
    chunk_max_tasks: int = 1000
    lease_seconds: float = 60.0
    """A chunk leased by a worker that stops renewing it is handed to another after this long."""
    transient_retries: int = 3
    """Extra attempts, with backoff, for a task whose failure is transient (after botocore's own)."""
    retry_backoff_seconds: float = 1.0
    slowdown_pause_seconds: float = 0.5
    """A prefix S3 answers SlowDown for pauses this long, doubling per answer in a row (up to 20 s),
    and runs half as many tasks at once; successes bring it back (engine/throttle.py)."""
    failure_threshold_tasks: int = 1000
    failure_threshold_rate: float = 0.5
    """Once this many tasks ran, a failure rate above this fails the job (as S3 and COS do)."""
    status_poll_seconds: float = 1.0
    """How often a running chunk looks at its job's status while few of the job's chunks can run
    at once (cancel stops it within about this)."""
    status_reads_per_second: float = 200.0
    """The most status looks per second that all of one job's running chunks make together: with
    more chunks running at once, each looks less often (up to ``status_poll_max_seconds``), so
    the one job item is never read hot (DynamoDB serves one item 3,000 RCU/s at most)."""
    status_poll_max_seconds: float = 5.0
    job_concurrency: int | None = None
    """How many chunks of one job can run at once over every worker (deployed: the event source's
    MaximumConcurrency); None: ``workers``, this process's."""
    idle_poll_seconds: float = 0.2
    prepare_attempts: int = 12
    prepare_retry_seconds: float = 5.0
    """A manifest that does not answer is tried this often, this far apart (embedded), then the job fails."""
    finalize_step_seconds: float = 600.0
    """Embedded: a finalize writing a long report stops after about this long with a checkpoint,
    and the next step goes on from it (so a killed process loses at most one step). Deployed,
    the Lambda deadline less ``BATCHOPS_DEADLINE_MARGIN_SECONDS`` sets the step instead."""
    copy: CopySettings = field(default_factory=CopySettings)
    s3_client: str = "lean"
    """``lean``: copy, head, delete and restore calls go through batchops.s3fast (boto3's semantics
    at a fraction of its CPU); ``boto3``: every call is boto3's."""

    def status_poll_interval(self, chunk_count: int) -> float:
        """How often one running chunk of a job of ``chunk_count`` chunks looks at its status."""
        running = min(chunk_count, self.job_concurrency or self.workers)
        spread = running / self.status_reads_per_second
        return max(self.status_poll_seconds, min(spread, self.status_poll_max_seconds))

    @property
    def s3_connections(self) -> int:
        # A large copy runs its parts in parallel inside one task.
        return self.workers * self.task_concurrency * max(1, self.copy.part_concurrency) + 4
