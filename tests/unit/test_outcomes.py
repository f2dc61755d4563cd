"""Outcomes as a segment stores them: one encoding whatever objects carry them."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from batchops.engine.outcomes import decode_outcomes, encode_outcomes
from batchops.ops.outcome import TaskOutcome

outcomes = st.builds(
    TaskOutcome,
    st.booleans(),
    st.sampled_from([200, 202, 403, 404, 500, 503]),
    st.text(max_size=80),
    st.text(max_size=300),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(outcomes, min_size=1, max_size=5), st.lists(st.integers(0, 4), max_size=300))
def test_repeated_outcome_objects_encode_as_equal_distinct_ones(
    kinds: list[TaskOutcome], picks: list[int]
) -> None:
    # GIVEN a list of outcomes that repeats a few objects (as a DeleteObjects request's successes
    # are one object), and the same list made of a distinct copy at every position
    repeated = [kinds[pick % len(kinds)] for pick in picks]
    distinct = [dataclasses.replace(o) for o in repeated]
    # WHEN both are encoded
    # THEN the bytes are the same, and decode to the outcomes (transient is not stored)
    assert encode_outcomes(repeated) == encode_outcomes(distinct)
    assert decode_outcomes(encode_outcomes(repeated)) == [
        dataclasses.replace(o, error_code=o.error_code[:64], message=o.message[:200]) for o in repeated
    ]
