"""Submit: a landed manifest becomes one CreateJob per matching rule."""
