"""The `batchops` command."""
