"""Team settings the issues call configurable, end to end on SQLite and PostgreSQL: the Jira
story points field and the GitHub size labels through intake and the worker into `small`, and
the trust half-life through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from scipy.stats import beta

from tests import ledger_helpers as h
from tests.conftest import CONFIG_TOML
from tests.helpers import CLIENT_TOKEN
from tests.ledger_fixture import at, insert_ledger, row
from trackrecord.config import ConfigError, load_config

# Team "platform" (Codertocat/Hello-World, TES) gets its own settings; team "web"
# (create-issue-branch, KT) keeps the defaults except a 45-day half-life.
PLATFORM = """story_points_field = "customfield_10099"
size_label_prefix = "T-Shirt/"
trust_half_life_days = 30
"""
TOML = CONFIG_TOML.replace('timezone = "UTC"\n', f'timezone = "UTC"\n{PLATFORM}', 1).replace(
    'jira = ["KT"]\n', 'jira = ["KT"]\ntrust_half_life_days = 45\n', 1
)


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "trackrecord.toml"
    path.write_text(TOML)
    return path


def deliver(client, settings, redis_conn, *posts) -> dict[str, dict]:
    for post in posts:
        if isinstance(post, tuple):
            h.post_github(client, *post)
        else:
            h.post_jira(client, post)
    h.run_worker(settings, redis_conn)
    return h.commitments(settings)


def test_story_points_come_from_the_teams_field(client, settings, redis_conn):
    created = "2019-02-16T03:01:52.000+0000"
    # 2 points in the team's field, 8 in the default one: platform reads 2 (small); web keeps
    # the default field and reads 8 (not small, threshold 3).
    fields = {"customfield_10099": 2.0, "customfield_10016": 8.0}
    rows = deliver(
        client,
        settings,
        redis_conn,
        h.jira_created(created, **fields),
        h.jira_created(created, key="KT-5", **fields),
    )
    assert (rows["jira:TES-41"]["team"], rows["jira:TES-41"]["small"]) == ("platform", True)
    assert (rows["jira:KT-5"]["team"], rows["jira:KT-5"]["small"]) == ("web", False)
    items = h.items(settings)
    assert (items["jira:TES-41"]["story_points"], items["jira:KT-5"]["story_points"]) == (2, 8)


def test_size_labels_use_the_teams_prefix(client, settings, redis_conn):
    opened = "2019-05-15T15:20:18Z"

    def issue(number, label, repo=h.REPO):
        return h.gh_issue("opened", opened, number=number, repo=repo, labels=[{"name": label}])

    rows = deliver(
        client,
        settings,
        redis_conn,
        issue(1, "t-shirt/s"),  # platform's prefix, any case: small (default small labels XS, S)
        issue(2, "size:S"),  # the default prefix means nothing to platform
        issue(3, "T-Shirt/L"),  # platform's prefix, but not a small size
        issue(4, "size:XS", repo=h.WEB_REPO),  # web keeps the default prefix
    )
    small = {key.rsplit("#", 1)[1]: r["small"] for key, r in rows.items()}
    assert small == {"1": True, "2": False, "3": False, "4": True}
    sizes = {k.rsplit("#", 1)[1]: i["size"] for k, i in h.items(settings).items()}
    assert sizes == {"1": "S", "2": None, "3": "L", "4": "XS"}


def _beta_mean_interval(kept: float, broken: float) -> tuple[float, float, float]:
    a, b = 1 + kept, 1 + broken
    return a / (a + b), beta.ppf(0.05, a, b), beta.ppf(0.95, a, b)


@pytest.fixture
def api(client, env):
    # One kept promise settled on June 1, one broken (dropped) settled on May 2.
    insert_ledger(
        env["DATABASE_URL"],
        [
            row("K1", "on_time", (6, 1), made=at(5, 1), delivered=at(6, 1)),
            row("B1", "dropped", (5, 10), made=at(4, 1), settled=at(5, 2)),
        ],
    )

    def get(path):
        answer = client.get(path, headers={"Authorization": f"Bearer {CLIENT_TOKEN}"})
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()

    return get


def test_a_shorter_half_life_forgets_faster_through_the_api(api):
    rec = api("/api/v1/teams/platform/track-record?from=2024-06-01&to=2024-06-30")
    # As of 2024-07-01 00:00 UTC the kept promise is 30 days old, the broken one 60: with a
    # 30-day half-life they weigh 1/2 and 1/4, so Beta(1.5, 1.25), mean 1.5 / 2.75.
    assert rec["as_of"] == "2024-07-01T00:00:00+00:00"
    assert rec["trust_score"]["estimate"] == pytest.approx(1.5 / 2.75)
    est, low, high = _beta_mean_interval(0.5, 0.25)
    assert (rec["trust_score"]["low"], rec["trust_score"]["high"]) == (
        pytest.approx(low),
        pytest.approx(high),
    )
    # The default 90 days would weigh them 2 ** (-1/3) and 2 ** (-2/3): a different estimate.
    default, _, _ = _beta_mean_interval(2 ** (-1 / 3), 2 ** (-2 / 3))
    assert default == pytest.approx(0.5239, abs=1e-4) and est == pytest.approx(0.5455, abs=1e-4)

    # The client pools platform (30 days) and web (45 days): the longer half-life, as of the
    # end of June in Berlin (22:00 UTC), so the ages are 29 and 59 days and 22 hours.
    rec = api("/api/v1/clients/acme/track-record?from=2024-06-01&to=2024-06-30")
    as_of = datetime(2024, 6, 30, 22, tzinfo=UTC)
    kept, broken = ((as_of - t).total_seconds() / 86400 for t in (at(6, 1), at(5, 2)))
    est, low, high = _beta_mean_interval(0.5 ** (kept / 45), 0.5 ** (broken / 45))
    assert rec["trust_score"] == {
        "estimate": pytest.approx(est),
        "low": pytest.approx(low),
        "high": pytest.approx(high),
    }


def test_team_settings_are_validated(tmp_path):
    def load(extra: str):
        path = tmp_path / "t.toml"
        path.write_text(CONFIG_TOML.replace('timezone = "UTC"\n', f'timezone = "UTC"\n{extra}', 1))
        return load_config(path)

    team = load("").team("platform")
    assert (team.story_points_field, team.size_label_prefix) == ("customfield_10016", "size:")
    assert (team.small_labels, team.trust_half_life_days) == (["size:XS", "size:S"], 90)
    # Default small labels follow the prefix and the two smallest sizes.
    team = load('size_label_prefix = "est-"\nsize_values = ["1", "2", "3", "5", "8"]\n')
    assert team.team("platform").small_labels == ["est-1", "est-2"]
    with pytest.raises(ConfigError, match="trust_half_life_days: Input should be greater than 0"):
        load("trust_half_life_days = 0\n")
    with pytest.raises(ConfigError, match="small label 'size:S' is not size_label_prefix 'est-'"):
        load('size_label_prefix = "est-"\nsmall_labels = ["size:S"]\n')
    with pytest.raises(ConfigError, match="story_points_field: String should match pattern"):
        load('story_points_field = "custom field"\n')
    with pytest.raises(ConfigError, match="size values repeat"):
        load('size_values = ["S", "s"]\n')


def test_the_milestones_chance_uses_the_teams_half_life(client, env):
    # Settled 30 and 60 days ago: with platform's 30-day half-life, Beta(1.5, 1.25) now.
    now = datetime.now(UTC).replace(microsecond=0)
    day = 86400
    kept, broken = (now - timedelta(seconds=30 * day), now - timedelta(seconds=60 * day))
    insert_ledger(
        env["DATABASE_URL"],
        [
            row("K1", "on_time", kept.date(), made=kept - timedelta(days=9), delivered=kept),
            row("B1", "dropped", broken.date(), made=broken - timedelta(days=9), settled=broken),
        ],
    )
    answer = client.get(
        "/api/v1/teams/platform/milestones", headers={"Authorization": f"Bearer {CLIENT_TOKEN}"}
    )
    assert answer.status_code == 200, answer.get_json()
    # A few seconds pass between `now` here and the API's: they move the fourth decimal at most.
    assert answer.get_json()["trust_score"]["estimate"] == pytest.approx(1.5 / 2.75, abs=1e-4)
