"""The configuration file: its shape, its defaults, and errors that name file, key and problem."""

from pathlib import Path

import pytest

from tests.conftest import CONFIG_TOML
from trackrecord.config import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    ConfigError,
    Settings,
    load_config,
    secret_for,
)


def write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_the_documented_shape_loads(tmp_path):
    cfg = load_config(write(tmp_path, CONFIG_TOML))
    src = cfg.source("github", "codertocat/hello-world")  # GitHub names ignore case
    assert (src.team, src.client, src.timezone) == ("platform", "acme", "UTC")
    assert cfg.source("jira", "TES").team == "platform"
    assert cfg.source("github", "acme-corp/own-secret").secret_env == "OWN_HOOK_SECRET"
    assert cfg.source("github", "nobody/else") is None
    assert cfg.client("acme").token_env == "ACME_API_TOKEN"
    assert cfg.team("web").timezone == "Europe/Berlin"


def test_defaults_without_environment():
    s = Settings.from_env({})
    assert s.database_url == DEFAULT_DATABASE_URL
    # Never relative to the current folder (issue 12): the user's data directory.
    assert s.database_url == f"sqlite:///{Path.home()}/.local/share/trackrecord/trackrecord.db"
    assert s.redis_url == DEFAULT_REDIS_URL == "redis://127.0.0.1:6379/0"
    assert s.config.sources() == []


def test_secret_for_prefers_the_sources_own_variable(tmp_path):
    cfg = load_config(write(tmp_path, CONFIG_TOML))
    env = {"GITHUB_WEBHOOK_SECRET": "global", "OWN_HOOK_SECRET": "own"}
    assert secret_for("github", cfg.source("github", "acme-corp/own-secret"), env) == "own"
    assert secret_for("github", cfg.source("github", "Codertocat/Hello-World"), env) == "global"
    assert secret_for("github", None, env) == "global"
    assert secret_for("jira", None, env) is None


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[[clients]]\nname = "a"\ntimezone = "Mars/Base"\n', "clients[0].timezone", "timezone"),
        (
            '[[clients]]\nname = "a"\n[[clients.teams]]\nname = "t"\ngithub = ["no-slash"]\n',
            "clients[0].teams[0].github[0].repo",
            "owner/name",
        ),
        (
            '[[clients]]\nname = "a"\n[[clients.teams]]\nname = "t"\njira = ["plat"]\n',
            "clients[0].teams[0].jira[0].project",
            "Jira project key",
        ),
        ('[[clients]]\nname = "a"\ncolour = "red"\n', "clients[0].colour", "unknown key"),
        ('[[clients]]\ntimezone = "UTC"\n', "clients[0].name", "Field required"),
        (
            '[[clients]]\nname = "a"\n[[clients.teams]]\nname = "t"\n'
            '[[clients]]\nname = "b"\n[[clients.teams]]\nname = "t"\n',
            "(top level)",
            "team 't' is declared twice",
        ),
        ('[[clients]\nname = "a"\n', "", "not valid TOML"),
    ],
)
def test_bad_files_name_file_key_and_problem(tmp_path, text, key, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    assert key in message
    assert problem in message


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: cannot read"):
        load_config(tmp_path / "nope.toml")


def test_cli_refuses_to_start_on_a_bad_file(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cli.main import main

    path = write(tmp_path, '[[clients]]\nname = "a"\ntimezone = "Nowhere/City"\n')
    monkeypatch.setenv("TRACKRECORD_CONFIG", str(path))
    result = CliRunner().invoke(main, ["check-config"])
    assert result.exit_code == 2
    assert "clients[0].timezone: unknown timezone 'Nowhere/City'" in result.output


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[[clients]]\nname = "a"\ntoken_env = "T"\n[[clients]]\nname = "b"\ntoken_env = "T"\n',
            "share token_env 'T'",
        ),
        (
            '[[clients]]\nname = "a"\ntoken_env = "TRACKRECORD_ADMIN_TOKEN"\n',
            "admin token's variable",
        ),
    ],
)
def test_a_client_token_reads_one_client_only(tmp_path, text, problem):
    # Shared, a token would read the first client's record for both; the admin variable, all.
    with pytest.raises(ConfigError, match=problem):
        load_config(write(tmp_path, text))


def test_the_badge_is_public_unless_the_team_turns_it_off(tmp_path):
    text = CONFIG_TOML.replace('name = "web"\n', 'name = "web"\nbadge = false\n')
    cfg = load_config(write(tmp_path, text))
    assert cfg.team("platform").badge is True
    assert cfg.team("web").badge is False
