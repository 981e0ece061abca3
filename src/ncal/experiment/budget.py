"""Budget schedules: absolute label counts B_0 < B_1 < ... < B_R (docs/algorithms.md §5.1)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from ..errors import NcalError


def _count(value: float | int, pool_size: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NcalError(f"`{name}` must be a label count or a fraction of the pool; got {value!r}")
    if isinstance(value, float) and 0 < value < 1:
        return max(1, round(value * pool_size))
    if value != int(value) or value < 0:
        raise NcalError(
            f"`{name}` must be a non-negative integer or a fraction in (0, 1); got {value!r}"
        )
    return int(value)


def budget_schedule(
    pool_size: int,
    *,
    initial: float | int = 200,
    query: float | int = 200,
    rounds: int = 5,
    budgets: Sequence[float | int] | None = None,
) -> list[int]:
    """Cumulative annotations per round (labeled-set sizes without several annotators),
    validated against the pool size.

    Either ``budgets`` (explicit counts or pool fractions, strictly increasing) or ``initial`` +
    ``rounds`` × ``query``. Fractions in (0, 1) are read as shares of the pool.
    """
    if budgets:
        sched = [_count(b, pool_size, "budgets") for b in budgets]
    else:
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
            raise NcalError(f"`rounds` must be a non-negative integer; got {rounds!r}")
        b0 = _count(initial, pool_size, "initial")
        q = _count(query, pool_size, "query")
        if rounds and q == 0:
            raise NcalError("`query` must be at least 1 when `rounds` > 0")
        sched = [b0 + r * q for r in range(rounds + 1)]
    if sched[0] < 1:
        raise NcalError("the initial labeled set must hold at least one sample (`initial` >= 1)")
    if any(b <= a for a, b in itertools.pairwise(sched)):
        raise NcalError(f"budgets must strictly increase; got {sched}")
    if sched[-1] > pool_size:
        raise NcalError(
            f"the budget schedule ends at {sched[-1]} labels but the pool holds only {pool_size} "
            "samples; lower `initial`/`query`/`rounds` or use a larger pool"
        )
    return sched
