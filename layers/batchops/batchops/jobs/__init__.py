"""Jobs: model, lifecycle and the service every entry point calls."""
