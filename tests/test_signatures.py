"""GitHub's published example must verify, and any change to body or secret must not."""

from webhook_app.signatures import sign, verify

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
