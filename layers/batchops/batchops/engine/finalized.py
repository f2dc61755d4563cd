"""What a call of ``Engine.finalize`` did: its own module, so that the SQS dispatcher can tell
without importing the engine (the jobs API and the submit function never load it)."""

from __future__ import annotations

import enum


class Finalized(enum.Enum):
    """What a call of ``Engine.finalize`` did."""

    DONE = "done"
    """The job ended (by this finalizer or another), or had nothing to finalize."""
    BUSY = "busy"
    """Another finalizer holds the job, or this one lost its claim and stopped: try later."""
    MORE = "more"
    """The deadline came first: a checkpoint is stored and the claim released; the next finalize
    goes on from the checkpoint."""
