"""What became of a commitment: the outcome names and their groups, the one home of both.

The ledger rules (`ledger.rules`) settle an item into an `Outcome`; every figure counts by the
groups below, in Python and in SQL alike (`ledger.reading.outcome_in` turns a group into a SQL
predicate), so no outcome name is ever spelt out a second time. docs/metrics.md, "Inputs".
"""

from enum import StrEnum


class Outcome(StrEnum):
    EARLY = "early"
    ON_TIME = "on_time"
    LATE = "late"
    MISSED = "missed"
    DROPPED = "dropped"
    DESCOPED = "descoped"
    PENDING = "pending"
    # Not commitments: completed with no promise. Counted as unpromised deliveries only.
    UNPROMISED = "unpromised"
    # Completed, unpromised, and names other items: its delivery belongs to them.
    LINKED = "linked"


# Frozen so that no caller can widen the definition of a kept promise by accident.
KEPT = frozenset({Outcome.EARLY, Outcome.ON_TIME})
BROKEN = frozenset({Outcome.LATE, Outcome.MISSED, Outcome.DROPPED})
DELIVERED = frozenset({Outcome.EARLY, Outcome.ON_TIME, Outcome.LATE})
# Kept or broken: what counts as due. Descoped is settled in the ledger's sense too, but it is
# neither kept nor broken, so the figures never count it as due.
SETTLED = KEPT | BROKEN
# The outcomes of a promise: the rows the figures read. `unpromised` and `linked` rows are
# deliveries without a promise.
PROMISED = SETTLED | {Outcome.DESCOPED, Outcome.PENDING}

# The record's count field of each promise outcome (docs/metrics.md, "Counts").
COUNT_FIELD = {
    Outcome.EARLY: "delivered_early",
    Outcome.ON_TIME: "delivered_on_time",
    Outcome.LATE: "delivered_late",
    Outcome.MISSED: "missed",
    Outcome.DROPPED: "dropped",
    Outcome.DESCOPED: "descoped",
    Outcome.PENDING: "pending",
}


def values(group: frozenset[Outcome]) -> tuple[str, ...]:
    """The stored values of a group, in a fixed order (for SQL `IN (...)`)."""
    return tuple(sorted(o.value for o in group))
