"""The execution engine: prepare a job, run its chunks, finalize it; dispatched in-process or over SQS."""
