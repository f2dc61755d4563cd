"""Manifests and the resources they name."""
