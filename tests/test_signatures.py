"""GitHub's published example must verify, and any change to body or secret must not; a request
is checked against every configured secret, and the one that signed it says which sources it
speaks for."""

import pytest

from trackrecord.config import load_config, secret_groups, unsigned_sources
from webhook_app import signatures
from webhook_app.errors import Rejected
from webhook_app.signatures import matching, sign, verify, verify_request

# https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
SECRET = "It's a Secret to Everybody"
PAYLOAD = b"Hello, World!"
EXPECTED = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_githubs_published_example_verifies():
    assert sign(SECRET, PAYLOAD) == EXPECTED
    assert verify(SECRET, PAYLOAD, EXPECTED)


def test_one_byte_change_in_the_body_fails():
    assert not verify(SECRET, b"Hello, World?", EXPECTED)


def test_one_character_change_in_the_signature_fails():
    tampered = EXPECTED[:-1] + ("0" if EXPECTED[-1] != "0" else "1")
    assert not verify(SECRET, PAYLOAD, tampered)


def test_other_secret_or_missing_header_fails():
    assert not verify("another secret", PAYLOAD, EXPECTED)
    assert not verify(SECRET, PAYLOAD, None)
    assert not verify(SECRET, PAYLOAD, "")
    # The bare hex digest without the algorithm prefix is not GitHub's format.
    assert not verify(SECRET, PAYLOAD, EXPECTED.removeprefix("sha256="))


# --- which secret signed, and which sources it speaks for ------------------------------------
TOML = """
[[clients]]
name = "acme"
[[clients.teams]]
name = "a"
github = ["acme/one", { repo = "acme/two", secret_env = "ACME_TWO" }]
jira = [{ project = "ACME", secret_env = "ACME_JIRA" }, "SHARED"]

[[clients]]
name = "beta"
[[clients.teams]]
name = "b"
github = [
  { repo = "beta/app", secret_env = "BETA_GH" },
  { repo = "beta/unset", secret_env = "NOT_SET" },
]
jira = [{ project = "BETA", secret_env = "BETA_JIRA" }]
"""
ENV = {
    "GITHUB_WEBHOOK_SECRET": "global-gh",
    "ACME_TWO": "acme-two",
    "BETA_GH": "global-gh",  # the same value as the global one: one group
    "ACME_JIRA": "acme-jira",
    "BETA_JIRA": "beta-jira",
}


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "trackrecord.toml"
    path.write_text(TOML)
    return load_config(path)


def keys(sources) -> list[str]:
    return sorted(s.key for s in sources)


def test_matching_names_the_secret_that_signed_and_compares_every_one(monkeypatch):
    body = b'{"a": 1}'
    secrets = ["one", "two", "three"]
    assert matching(secrets, body, sign("two", body)) == "two"
    assert matching(secrets, body, sign("four", body)) is None
    assert matching(secrets, body, "sha256=0") is None
    assert matching(secrets, body, None) is None
    compared = []
    real = signatures.verify
    monkeypatch.setattr(signatures, "verify", lambda s, b, h: compared.append(s) or real(s, b, h))
    assert matching(secrets, body, sign("one", body)) == "one"
    assert compared == secrets  # no early exit on the first match


def test_secret_groups_bind_each_value_to_the_sources_using_it(config):
    groups = secret_groups(config, "github", ENV)
    assert {secret: keys(sources) for secret, sources in groups.items()} == {
        "global-gh": ["acme/one", "beta/app"],
        "acme-two": ["acme/two"],
    }
    # A source whose own variable is unset has no secret: it does not fall back to the global.
    assert keys(unsigned_sources(config, "github", ENV)) == ["beta/unset"]
    jira = secret_groups(config, "jira", ENV)
    assert {s: keys(v) for s, v in jira.items()} == {"acme-jira": ["ACME"], "beta-jira": ["BETA"]}
    assert keys(unsigned_sources(config, "jira", ENV)) == ["SHARED"]


def check(config, kind, body, header, env=ENV, allow_unsigned=False):
    return verify_request(
        kind,
        config,
        body,
        header,
        header_name="X-Hub-Signature",
        delivery="d-1",
        allow_unsigned=allow_unsigned,
        env=env,
    )


def refusal(config, *args, **kwargs) -> str:
    with pytest.raises(Rejected) as info:
        check(config, *args, **kwargs)
    assert info.value.status == 401
    return info.value.code


def test_verify_request_answers_the_sources_of_the_secret_that_signed(config):
    body = b"anything at all, never parsed"
    assert keys(check(config, "github", body, sign("acme-two", body)).sources) == ["acme/two"]
    signed = check(config, "github", body, sign("global-gh", body))
    assert keys(signed.sources) == ["acme/one", "beta/app"]
    assert keys(check(config, "jira", body, sign("beta-jira", body)).sources) == ["BETA"]
    assert refusal(config, "github", body, sign("other", body)) == "bad_signature"
    assert refusal(config, "github", body, "sha256=0") == "bad_signature"
    assert refusal(config, "github", body, None) == "missing_signature"
    assert refusal(config, "github", body, sign("x", body), env={}) == "no_secret"
    assert refusal(config, "jira", body, None, env={}) == "no_secret"


def test_unsigned_jira_speaks_only_for_projects_without_a_secret(config):
    body = b"{}"
    unsigned = check(config, "jira", body, None, allow_unsigned=True)
    assert keys(unsigned.sources) == ["SHARED"]
    # A signature that is present must still match.
    assert refusal(config, "jira", body, "sha256=0", allow_unsigned=True) == "bad_signature"
    every = check(config, "jira", body, None, env={}, allow_unsigned=True)
    assert keys(every.sources) == ["ACME", "BETA", "SHARED"]


def test_a_source_is_covered_only_by_its_own_secret(config):
    body = b"{}"
    acme = check(config, "github", body, sign("acme-two", body))
    acme_two = config.source("github", "ACME/Two")  # names are case-insensitive
    signatures.require_covered(acme, acme_two, delivery="d-1")
    with pytest.raises(Rejected) as info:
        signatures.require_covered(acme, config.source("github", "beta/app"), delivery="d-1")
    assert (info.value.status, info.value.code) == (401, "bad_signature")
    assert "beta/app" in info.value.message
