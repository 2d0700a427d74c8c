"""The key never reaches logs, exception text or tracebacks with local variables."""

import logging
import traceback

import pytest

from client.providers import (
    CheckOutcome,
    CheckRetryPolicy,
    ProviderCallError,
    ProviderHTTPError,
    call_with_backoff,
    verify_key,
)
from client.providers.probes import build_probe_request
from client.providers.transport import build_opener, send
from splitkey.secret import SecretKey
from tests.provider_mock import (  # noqa: F401 (provider_mock is a fixture)
    GOOGLE_OK,
    PROBE_PATHS,
    MockResponse,
    google_error,
    google_error_info,
    provider_mock,
)

GOOGLE_PATH = PROBE_PATHS["google"]


def _google_key() -> str:
    return "AIzaSyTESTONLY-c11_leak0123456789abcdijkl"


def _pieces(secret: str) -> list[str]:
    return [secret[i : i + 8] for i in range(len(secret) - 7)]


def _assert_clean(text: str, what: str) -> None:
    secret = _google_key()
    assert secret not in text, what
    leaked = [piece for piece in _pieces(secret) if piece in text]
    assert leaked == [], f"{what} contains pieces of the key"


def _outage_then_timeout(mock):
    # A hostile or broken gateway that echoes the key in its error body.
    echo = google_error(503, "UNAVAILABLE", f"backend down for key {_google_key()}")
    mock.script(GOOGLE_PATH, echo, MockResponse(200, GOOGLE_OK.body, delay_s=10))


def _capture_failed_call(secret: SecretKey, mock) -> tuple[str, str, str]:
    """Run a provider call that fails; return str, repr and the traceback with locals.

    Kept apart from the test so that the frames in the traceback hold only the
    SecretKey, never the plain key.
    """
    endpoints = mock.endpoints()
    request = build_probe_request("google", endpoints, secret)
    opener = build_opener(use_environment_proxies=False)

    def attempt():
        return send("google", request, secret, timeout_s=0.5, opener=opener)

    try:
        call_with_backoff(attempt, provider="google", max_attempts=2, initial_s=0.05, max_s=0.1)
    except (ProviderCallError, ProviderHTTPError) as exc:
        details = traceback.TracebackException(type(exc), exc, exc.__traceback__, capture_locals=True)
        return str(exc), repr(exc), "".join(details.format())
    raise AssertionError("the provider call did not fail")


@pytest.fixture
def debug_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def _all_log_text(caplog) -> str:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    lines = []
    for record in caplog.records:
        lines.append(handler.format(record))
        lines.append(repr(record.args))
        lines.append(repr(record.__dict__))
    return "\n".join(lines)


def test_google_outage_leaks_nothing(provider_mock, debug_logs, capsys):
    _outage_then_timeout(provider_mock)

    text, representation, formatted = _capture_failed_call(SecretKey(_google_key(), "google"), provider_mock)

    assert "timeout" in text
    assert "ProviderCallError" in formatted
    # Proves the locals were captured: the frame's SecretKey shows only its mask.
    assert "secret = <SecretKey google AIza…ijkl>" in formatted
    _assert_clean(text, "str() of the exception")
    _assert_clean(representation, "repr() of the exception")
    _assert_clean(formatted, "traceback with locals")
    _assert_clean(_all_log_text(debug_logs), "log records")
    assert any(record.levelno == logging.WARNING for record in debug_logs.records)
    captured = capsys.readouterr()
    _assert_clean(captured.out + captured.err, "standard output and error")

    requests = provider_mock.requests_to(GOOGLE_PATH)
    assert len(requests) == 2
    for request in requests:
        assert request.headers["x-goog-api-key"] == _google_key()
        _assert_clean(request.target, "request URL")
        assert "key=" not in request.target


def test_google_check_result_leaks_nothing(provider_mock, debug_logs):
    _outage_then_timeout(provider_mock)

    result = verify_key(
        "google",
        _google_key(),
        provider_mock.endpoints(),
        timeout_s=0.5,
        retry=CheckRetryPolicy(max_attempts=2, initial_s=0.05, max_s=0.1),
    )

    assert result.outcome is CheckOutcome.COULD_NOT_VERIFY
    assert result.key_hint == "AIza…ijkl"
    _assert_clean(repr(result), "repr() of the check result")
    _assert_clean(result.message, "check result message")
    _assert_clean(_all_log_text(debug_logs), "log records")
    assert len(provider_mock.requests_to(GOOGLE_PATH)) == 2


def test_rejected_key_echo_redacted(provider_mock, debug_logs):
    echo = google_error(
        400,
        "INVALID_ARGUMENT",
        f"API key not valid: {_google_key()}",
        [google_error_info("API_KEY_INVALID")],
    )
    provider_mock.script(GOOGLE_PATH, echo)

    text, representation, formatted = _capture_failed_call(SecretKey(_google_key(), "google"), provider_mock)

    assert "HTTP 400" in text
    assert "[redacted]" in text
    _assert_clean(text, "str() of the exception")
    _assert_clean(representation, "repr() of the exception")
    _assert_clean(formatted, "traceback with locals")
    _assert_clean(_all_log_text(debug_logs), "log records")


def test_secret_key_repr_masked():
    secret = SecretKey(_google_key(), "google")
    assert repr(secret) == "<SecretKey google AIza…ijkl>"
    _assert_clean(repr(secret), "repr() of SecretKey")
    _assert_clean(f"{secret}", "format() of SecretKey")


def test_pieces_check_can_fail():
    with pytest.raises(AssertionError):
        _assert_clean("prefix " + _google_key()[5:13] + " suffix", "sample")
