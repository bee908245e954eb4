"""PostgreSQL: a batch's deliveries split into transactions that two workers seldom wait on.

The ledger locks a milestone (sprint, version) while it writes to it (ledger.store_common.
lock_scopes), so `plan` first sorts the batch into chunks of one milestone's deliveries, and
`pick` then fills a transaction with as many chunks as fit whose milestones are free at that
moment, tried without waiting (`try_lock_scopes`); only when another worker holds every one
does it wait, for the first, and then fills up with those free. A transaction costs a fixed
set of statements and a commit (a WAL flush); one milestone's chunk alone is about ten
deliveries of a 200-delivery batch spread over 20 milestones, and filled up it is up to MERGE
(docs/benchmarks.md, "fourth pass").
A worker waits only while it holds no lock, so two workers cannot deadlock on milestones; one
that finds a milestone taken leaves that chunk for a later transaction.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from rq.timeouts import JobTimeoutException

from ledger.store_batch import groupable
from ledger.store_common import lock_scopes, try_lock_scopes
from trackrecord.models import Delivery
from workers.delivery_apply import Prepared, prepare_row

# Deliveries to a PostgreSQL transaction at most, from any number of milestones. 20 (one
# chunk) to 100 were measured: past about 50, a bigger transaction saves little, holds its
# milestones longer and, should one delivery fail, sends more back to be applied one by one.
MERGE = 60


@dataclass
class Chunk:
    rows: list[Delivery]
    scopes: frozenset[str]  # the milestones its transaction must hold
    alone: bool = False  # cannot be grouped or read: its own transaction, in its place


def plan(rows: Sequence[Delivery], size: int) -> tuple[list[list[Chunk]], dict]:
    """The batch's deliveries in segments of chunks of up to `size`, each chunk holding
    deliveries of one set of scopes. Segments run in order; a segment's chunks share no item,
    so they may run in any order and together. Each item's deliveries keep their arrival order:
    a delivery joins the chunk already holding one of its items; one whose items are in two
    chunks, or that cannot be grouped or read, ends the segment and goes alone in the next.
    Returns the segments and the prepared deliveries (row id: Prepared, None when unreadable)."""
    segments: list[list[Chunk]] = []
    prepared: dict[int, Prepared | None] = {}
    open_: dict[frozenset, list[Delivery]] = {}  # by scopes, in order of first arrival
    held: dict[str, frozenset] = {}  # item key: the scopes of the chunk holding it
    # Every scope a home's deliveries name: an item moved to another milestone joins the
    # chunk holding it, and its transaction must hold the new milestone from the start too.
    named: dict[frozenset, set[str]] = {}

    def close():
        # Homes in a random order: two workers holding batches of the same milestones then do
        # not walk them in the same order, one waiting on each lock the other holds (a convoy).
        # A home's own chunks stay in order: an item's deliveries may be in two of them.
        homes = list(open_.items())
        random.shuffle(homes)
        chunks = [
            Chunk(rows_[i : i + size], frozenset(named[home]))
            for home, rows_ in homes
            for i in range(0, len(rows_), size)
        ]
        if chunks:
            segments.append(chunks)
        open_.clear()
        held.clear()
        named.clear()

    for row in rows:
        try:
            p = prepared[row.id] = prepare_row(row)
        except JobTimeoutException:
            raise
        except Exception:  # applied alone, where its fault is handled (Batch._each)
            p = None
        homes = {held[k] for k in p.keys if k in held} if p is not None else set()
        if p is None or not groupable(p.part.events) or len(homes) > 1:
            close()
            segments.append([Chunk([row], frozenset(), alone=True)])
            continue
        scopes = {e.scope for e in p.part.events if e.scope}
        home = homes.pop() if homes else frozenset(scopes)
        open_.setdefault(home, []).append(row)
        named.setdefault(home, set()).update(scopes)
        held.update(dict.fromkeys(p.keys, home))
    close()
    return segments, prepared


def pick(session, pending: list[Chunk], limit: int = MERGE) -> list[Delivery]:
    """Fill one transaction from a segment's `pending` chunks (taking them out of it): the
    chunks that fit within `limit` deliveries, in order, whose milestones no other worker holds
    now; when every one is held, the first chunk, waiting for its milestones (holding no lock
    yet), then again those free now. The rows to claim, in arrival order within each chunk."""
    chosen: list[Chunk] = []
    held: set[str] = set()
    _fill(session, pending, chosen, held, limit)
    if not chosen:
        first = pending[0]
        lock_scopes(session, set(first.scopes))
        chosen.append(pending.pop(0))
        held |= first.scopes
        _fill(session, pending, chosen, held, limit)
    return [row for chunk in chosen for row in chunk.rows]


def _fill(session, pending: list[Chunk], chosen: list[Chunk], held: set[str], limit: int) -> None:
    room = limit - sum(len(c.rows) for c in chosen)
    # Scopes of chunks found held by another worker: the chunks after them with the same
    # scopes are passed over too, so that a home's chunks keep their order.
    passed: set[frozenset] = set()
    for _ in range(2):  # a second try with the chunks behind those another worker holds
        tried = []
        for chunk in pending:
            if chunk.scopes in passed:
                continue
            if len(chunk.rows) > room:
                break  # in order: a home's later, smaller chunk must not go before this one
            tried.append(chunk)
            room -= len(chunk.rows)
        if not tried:
            return
        held |= try_lock_scopes(session, {s for c in tried for s in c.scopes} - held)
        for chunk in tried:
            if chunk.scopes <= held and chunk.scopes not in passed:
                pending.remove(chunk)
                chosen.append(chunk)
            else:
                room += len(chunk.rows)
                passed.add(chunk.scopes)
