"""The first hour of a new user (issue 12): tokens minted and revoked without a restart, the
teams list, and every expected CLI failure as one plain line and a non-zero exit, in process
(CliRunner) and as the installed command run from another folder with a home of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from cli.common import api_failure
from cli.main import main as cli
from tests.conftest import CONFIG_TOML
from tests.helpers import CLIENT_TOKEN
from trackrecord import migrate

TRACKRECORD = Path(sys.executable).with_name("trackrecord")
OTHER_CLIENT = """
[[clients]]
name = "globex"
timezone = "America/New_York"

[[clients.teams]]
name = "ops"
timezone = "Asia/Tokyo"
jira = ["OPS"]
"""


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "trackrecord.toml"
    path.write_text(CONFIG_TOML + OTHER_CLIENT)
    return path


@pytest.fixture
def run(env, monkeypatch, tmp_path):
    """The CLI in process, with no env file of the user's in the way."""
    monkeypatch.setenv("TRACKRECORD_ENV_FILE", str(tmp_path / "no-env-file"))

    def invoke(*args):
        result = CliRunner().invoke(cli, list(args))
        assert "Traceback" not in result.output, result.output
        return result

    return invoke


def _minted(result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


# --- tokens and the teams list -------------------------------------------------------------


def test_minted_token_works_at_once_and_stops_when_revoked(run, client):
    path = "/api/v1/teams/platform/track-record?from=2024-01-01&to=2024-12-31"
    token = _minted(run("token", "mint", "acme", "--name", "wall screen"))
    assert token.startswith("trk_") and token not in run("token", "list").output
    assert client.get(path, headers=_bearer(token)).status_code == 200
    # A client's minted token sees its own teams only; another client's is a 404.
    assert client.get("/api/v1/teams/ops/milestones", headers=_bearer(token)).status_code == 404

    listed = run("token", "list").output.splitlines()
    assert len(listed) == 1 and "acme" in listed[0] and "wall screen" in listed[0]
    token_id = listed[0].split("\t")[0]
    assert run("token", "revoke", token_id).exit_code == 0
    refused = client.get(path, headers=_bearer(token))
    assert refused.status_code == 401 and refused.get_json()["error"] == "unauthorized"
    assert "no tokens minted" in run("token", "list").output
    assert "revoked" in run("token", "list", "--all").output

    again = run("token", "revoke", token_id)
    assert again.exit_code == 1 and "already revoked" in again.stderr
    assert run("token", "revoke", "999").exit_code == 1


def test_mint_refuses_an_unknown_client_or_no_client(run):
    unknown = run("token", "mint", "nosuch")
    assert unknown.exit_code == 2 and "no client 'nosuch'" in unknown.stderr
    assert "acme, globex" in unknown.stderr
    assert run("token", "mint").exit_code == 2
    assert run("token", "mint", "acme", "--admin").exit_code == 2


def test_teams_list_for_client_and_admin_tokens(run, client):
    answer = client.get("/api/v1/teams", headers=_bearer(CLIENT_TOKEN))
    assert answer.status_code == 200
    teams = answer.get_json()["teams"]
    assert [(t["name"], t["client"], t["timezone"]) for t in teams] == [
        ("platform", "acme", "UTC"),
        ("web", "acme", "Europe/Berlin"),
    ]
    assert all(t["summary"] == "no promises yet" for t in teams)

    admin = _minted(run("token", "mint", "--admin"))
    everything = client.get("/api/v1/teams", headers=_bearer(admin)).get_json()["teams"]
    assert [t["name"] for t in everything] == ["platform", "web", "ops"]
    assert client.get("/api/v1/teams").status_code == 401
    assert client.get("/api/v1/teams", headers=_bearer("trk_nothing")).status_code == 401


def test_unknown_team_badge_is_an_svg_404(client):
    answer = client.get("/badges/nosuch.svg")
    assert answer.status_code == 404 and answer.mimetype == "image/svg+xml"
    assert b"no badge" in answer.data and b"nosuch" not in answer.data


# --- expected failures, one line each ------------------------------------------------------


def test_exclusions_of_an_unknown_team(run):
    result = run("exclusions", "--team", "nosuch")
    assert result.exit_code == 2 and "no team 'nosuch'" in result.stderr
    assert run("exclusions", "--team", "platform").output.strip() == "no exclusions"


def test_check_config_without_a_file_is_an_error(run, monkeypatch):
    monkeypatch.delenv("TRACKRECORD_CONFIG")
    result = run("check-config")
    assert result.exit_code == 2 and "TRACKRECORD_CONFIG is not set" in result.stderr
    assert "ok" not in result.stdout


def test_config_errors_all_at_once_with_the_nearest_key(run, monkeypatch, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[clients]]\nname = "a"\ntimezon = "UTC"\n'
        '[[clients.teams]]\nname = "t"\ntimezone = "Mars/Base"\ngithub = ["no-slash"]\n'
    )
    monkeypatch.setenv("TRACKRECORD_CONFIG", str(bad))
    monkeypatch.setenv("TRACKRECORD_MAX_BODY_BYTES", "lots")
    result = run("check-config")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert "TRACKRECORD_MAX_BODY_BYTES: not a whole number" in lines
    assert f"{bad}: clients[0].timezon: unknown key; did you mean 'timezone'?" in lines
    assert any("clients[0].teams[0].timezone" in line for line in lines)
    assert any("clients[0].teams[0].github[0].repo" in line for line in lines)


def test_database_without_tables(run, env, monkeypatch, tmp_path):
    url = env["DATABASE_URL"]
    if url.startswith("sqlite"):
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    else:
        migrate.downgrade(url, "base")  # PostgreSQL: the same database, its tables dropped
    for args in (["exclusions"], ["token", "list"], ["record", "platform", "--from",
                 "2024-01-01", "--to", "2024-02-01"], ["reconcile"], ["postbacks"]):  # fmt: skip
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "run `trackrecord db upgrade`" in result.stderr, (args, result.stderr)
    assert run("db", "upgrade").exit_code == 0
    assert run("exclusions").output.strip() == "no exclusions"


def test_database_that_does_not_answer(run, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://who:hunter2@127.0.0.1:1/none")
    for args in (["exclusions"], ["db", "upgrade"], ["token", "mint", "acme"]):
        result = run(*args)
        assert result.exit_code == 1
        assert "does not answer" in result.stderr and "hunter2" not in result.stderr


def test_backfill_and_reconcile_without_credentials(run, monkeypatch):
    for name in ("GITHUB_TOKEN", "GITHUB_APP_ID", "JIRA_URL", "JIRA_PAT", "JIRA_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    github = run("backfill", "github", "Codertocat/Hello-World")
    assert github.exit_code == 1 and "set GITHUB_TOKEN" in github.stderr
    assert len(github.stderr.strip().splitlines()) == 1
    jira = run("backfill", "jira", "TES")
    assert jira.exit_code == 1 and "set JIRA_URL" in jira.stderr


def test_backfill_with_bad_credentials_says_what_github_answered(run, monkeypatch, httpserver):
    httpserver.expect_request("/repos/Codertocat/Hello-World/milestones").respond_with_json(
        {"message": "Bad credentials"}, status=401
    )
    monkeypatch.setenv("GITHUB_TOKEN", "wrong")
    monkeypatch.setenv("GITHUB_API_URL", httpserver.url_for("/"))
    result = run("backfill", "github", "Codertocat/Hello-World")
    assert result.exit_code == 1 and "answered 401: Bad credentials" in result.stderr


def test_an_unreachable_api_is_named_with_its_reason():
    with pytest.raises(requests.ConnectionError) as refused:
        requests.get("http://127.0.0.1:1/repos/x/y/milestones?per_page=100", timeout=2)
    assert api_failure(refused.value) == (
        "http://127.0.0.1:1/repos/x/y/milestones does not answer: Connection refused"
    )


# --- the installed command, from another folder --------------------------------------------


def _command(home: Path, cwd: Path, *args, **extra):
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", **extra}
    done = subprocess.run(
        [str(TRACKRECORD), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_the_command_finds_its_env_file_from_any_folder(tmp_path, config_path):
    home, elsewhere = tmp_path / "home", tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    database = tmp_path / "data" / "trackrecord.db"
    env_file = home / ".config" / "trackrecord" / "env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text(
        f"# as scripts/run writes it\nTRACKRECORD_CONFIG={config_path}\n"
        f"export DATABASE_URL='sqlite:///{database}'\n"
    )
    assert _command(home, elsewhere, "db", "upgrade").returncode == 0
    minted = _command(home, elsewhere, "token", "mint", "acme")
    assert minted.returncode == 0 and minted.stdout.startswith("trk_")
    assert _command(home, tmp_path, "token", "list").stdout.count("acme") == 1
    assert _command(home, elsewhere, "exclusions").stdout.strip() == "no exclusions"
    assert not (elsewhere / "var").exists() and not (tmp_path / "var").exists()

    # The process environment wins over the env file.
    other = tmp_path / "other.db"
    won = _command(home, elsewhere, "exclusions", DATABASE_URL=f"sqlite:///{other}")
    assert won.returncode == 1 and str(other) in won.stderr and "db upgrade" in won.stderr


def test_without_settings_the_database_is_in_the_home_not_the_folder(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "work"
    elsewhere.mkdir()
    result = _command(home, elsewhere, "exclusions")
    assert result.returncode == 1
    assert f"sqlite:///{home}/.local/share/trackrecord/trackrecord.db" in result.stderr
    assert "run `trackrecord db upgrade`" in result.stderr
    assert not (elsewhere / "var").exists()
    checked = _command(home, elsewhere, "check-config")
    assert checked.returncode == 2 and "TRACKRECORD_CONFIG is not set" in checked.stderr


def test_backfill_with_the_api_unreachable(tmp_path, config_path):
    database = f"sqlite:///{tmp_path / 'trackrecord.db'}"
    migrate.upgrade(database)
    result = _command(
        tmp_path / "home", tmp_path, "backfill", "github", "Codertocat/Hello-World",
        DATABASE_URL=database, TRACKRECORD_CONFIG=str(config_path),
        GITHUB_TOKEN="x", GITHUB_API_URL="http://127.0.0.1:1",
    )  # fmt: skip
    assert result.returncode == 1
    assert "does not answer: Connection refused" in result.stderr
    assert '"reason": "Connection refused"' in result.stderr and '"status": null' not in (
        result.stderr
    )


def test_up_keeps_its_own_redis_in_the_data_directory_whatever_the_folder(tmp_path, monkeypatch):
    from cli.processes import local_redis_dir

    monkeypatch.chdir(tmp_path)
    home = {"HOME": "/home/lead"}
    assert local_redis_dir(home) == Path("/home/lead/.local/share/trackrecord/redis")
    assert local_redis_dir({**home, "XDG_DATA_HOME": "/data"}) == Path("/data/trackrecord/redis")
    # A relative XDG_DATA_HOME is ignored, as the XDG spec says: never a folder under the cwd.
    assert local_redis_dir({**home, "XDG_DATA_HOME": "rel"}).is_absolute()
