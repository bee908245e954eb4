"""The drain's shared transactions apply runs of deliveries together (workers.delivery_apply,
ledger.store_batch): several deliveries of one item, out of event-time order, in one batch,
give the ledger, the comments to post and the summaries to bump that applying each delivery
in turn gives. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from ledger.postbacks import Postback
from tests import ledger_helpers as h
from trackrecord.db import session_factory
from trackrecord.models import Delivery

DUE = date(2024, 5, 23)
ISSUES = (1, 2, 3)
MIRROR = 100  # the same deliveries for issue n + MIRROR, applied one by one


@pytest.fixture
def postback_on(env, monkeypatch):
    # Comments are wanted when the platform's credentials are set (workers.postback.wanted).
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_groups_token")


def at(day: date, hour: int = 10) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00Z"


def stream(n: int) -> list[tuple[str, dict]]:
    """Issue n's deliveries in arrival order: its first close arrives before the opening that
    promised it, then it is reopened and closed late."""
    due = DUE.isoformat()
    return [
        h.gh_issue("closed", at(DUE - timedelta(days=2)), number=n, due=due),
        h.gh_issue("opened", at(DUE - timedelta(days=10)), number=n, due=due),
        h.gh_issue("reopened", at(DUE + timedelta(days=1)), number=n, state="open",
                   closed_at=at(DUE), due=due),
        h.gh_issue("closed", at(DUE + timedelta(days=3)), number=n, due=due),
    ]  # fmt: skip


def _rows(settings, ids):
    with session_factory(settings.database_url)() as s:
        return s.scalars(select(Delivery).where(Delivery.id.in_(ids)).order_by(Delivery.id)).all()


def _ledger(settings, numbers, offset: int) -> dict:
    key = {f"github:{h.REPO}#{n}": n - offset for n in numbers}
    with session_factory(settings.database_url)() as s:
        posts = s.execute(select(Postback.item_key, Postback.kind, Postback.status)).all()
    return {
        "items": {key[k]: {c: v for c, v in row.items() if c != "key"}
                  for k, row in h.items(settings).items() if k in key},
        "commitments": {key[k]: row for k, row in h.commitments(settings).items() if k in key},
        "promise_changes": {key[k]: h.promise_changes(settings, k) for k in key},
        "postbacks": sorted((key[k], kind, status) for k, kind, status in posts if k in key),
    }  # fmt: skip


def test_deliveries_of_one_item_out_of_order_in_one_batch_match_one_by_one(
    client, settings, postback_on
):
    from workers import context
    from workers.jobs import Batch

    Session = context.sessions()
    together = Batch(Session)
    ids = sorted(_post_all(client, ISSUES))
    assert together.together(_rows(settings, ids))[1] is True
    one_by_one = Batch(Session)
    mirror = [n + MIRROR for n in ISSUES]
    for row in _rows(settings, sorted(_post_all(client, mirror))):
        assert one_by_one.one(row.id, row) == "processed"

    grouped, alone = _ledger(settings, ISSUES, 0), _ledger(settings, mirror, MIRROR)
    assert grouped == alone
    # Each issue: delivered early (the close arrived before the promise), then late after
    # its reopening: two comments to post, one per settlement.
    assert [kind.split(":")[1] for n, kind, _ in grouped["postbacks"] if n == 1] == [
        "early",
        "late",
    ]
    assert len(together.posts) == len(one_by_one.posts) == 2 * len(ISSUES)
    assert sorted(set(together.summaries)) == sorted(set(one_by_one.summaries))
    with session_factory(settings.database_url)() as s:
        statuses = set(s.scalars(select(Delivery.status).where(Delivery.id.in_(ids))))
    assert statuses == {"processed"}
    # Again: every delivery is claimed already, nothing is applied twice.
    assert together.together(_rows(settings, ids))[1] is True
    assert _ledger(settings, ISSUES, 0) == grouped


def _post_all(client, numbers) -> list[int]:
    """Post the issues' streams interleaved (step by step across the issues); the row ids."""
    from workers import context

    names = []
    for step in range(4):
        for n in numbers:
            event, doc = stream(n)[step]
            names.append(f"groups-{n}-{step}")
            h.post_github(client, event, doc, names[-1])
    with context.sessions()() as s:
        return list(s.scalars(select(Delivery.id).where(Delivery.delivery_id.in_(names))))
