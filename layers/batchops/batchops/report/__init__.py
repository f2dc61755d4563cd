"""Completion reports: results rows, per-status results files and the report manifest.json."""
