"""Errors of the submit side."""

from __future__ import annotations


class RuleError(ValueError):
    """A rule in the configuration cannot be used. The message names the field and the value."""

    def __init__(self, rule: str, field: str, value: object, why: str) -> None:
        super().__init__(f"rule {rule!r}: {field} = {value!r}: {why}")
        self.rule = rule
        self.field = field
        self.value = value
        self.why = why
