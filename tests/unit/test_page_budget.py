"""How many rows fit in a page's byte budget (event_rows.within_budget): a prefix, at least one."""

from __future__ import annotations

from pausable.server.event_rows import within_budget


def test_rows_fit_while_their_total_is_within_the_budget() -> None:
    assert within_budget([], 10) == 0
    assert within_budget([4, 4, 4], 10) == 2
    assert within_budget([4, 6, 1], 10) == 2
    assert within_budget([11, 1], 10) == 1, "at least one row, so a reader always moves on"
    assert within_budget([1, 20, 1], 10) == 1, "a prefix: nothing after a row that did not fit"
