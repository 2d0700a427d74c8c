"""Bounded retries of provider calls against the local provider mock."""

import email.utils
import random
import socket

import pytest
import tenacity

from client.providers import ProviderCallError, ProviderHTTPError, call_with_backoff, retry_after_seconds
from client.providers.transport import build_opener, build_request, send
from splitkey.errors import SplitkeyError
from splitkey.secret import SecretKey
from tests.provider_mock import (  # noqa: F401 (provider_mock is a fixture)
    OK_RESPONSES,
    MockResponse,
    anthropic_error,
    google_error,
    google_quota_details,
    openai_error,
    openrouter_error,
    provider_mock,
)

KEY = SecretKey("sk-proj-TESTONLY_backoff-" + "Zz9-" * 10)
PATH = "/openai/v1/chat/completions"

RATE_LIMITED = openai_error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded")


class _UpperBound(random.Random):
    """Full jitter that always draws the largest wait, so growth is visible."""

    def uniform(self, a, b):
        return b


class _LowerBound(random.Random):
    def uniform(self, a, b):
        return a


class _FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self):
        self.now = 0.0
        self.waits = []

    def sleep(self, seconds):
        self.waits.append(seconds)
        self.now += seconds

    def clock(self):
        return self.now


def _caller(url, provider="openai"):
    opener = build_opener(use_environment_proxies=False)
    request = build_request(url, KEY, "Authorization", {"model": "m", "max_tokens": 1}, bearer=True)

    def call():
        return send(provider, request, KEY, timeout_s=5, opener=opener)

    return call


def _run(mock, fake, provider="openai", path=PATH, rng=None, **limits):
    settings = {"max_attempts": 5, "max_total_s": 600.0, "initial_s": 1.0, "max_s": 30.0}
    settings.update(limits)
    return call_with_backoff(
        _caller(mock.url + path, provider),
        provider=provider,
        sleep=fake.sleep,
        clock=fake.clock,
        rng=rng or _UpperBound(),
        **settings,
    )


def test_rate_limit_then_success(provider_mock):
    fake = _FakeTime()
    provider_mock.script(PATH, RATE_LIMITED, OK_RESPONSES["openai"])
    response = _run(provider_mock, fake)
    assert response.status == 200
    assert response.body["object"] == "chat.completion"
    assert len(provider_mock.requests_to(PATH)) == 2
    assert fake.waits == [1.0]


def test_rate_limit_forever_stops_at_attempts(provider_mock):
    fake = _FakeTime()
    provider_mock.script(PATH, RATE_LIMITED)
    with pytest.raises(ProviderCallError) as caught:
        _run(provider_mock, fake, max_attempts=5)
    error = caught.value
    assert isinstance(error, SplitkeyError)
    assert not isinstance(error, tenacity.RetryError)
    assert error.attempts == 5
    assert error.last_status == 429
    assert error.provider == "openai"
    assert len(provider_mock.requests_to(PATH)) == 5
    assert fake.waits == [1.0, 2.0, 4.0, 8.0]
    message = str(error)
    assert "OpenAI" in message
    assert "5 attempt(s)" in message
    assert "HTTP 429" in message
    assert "request a higher usage tier" in message


def test_waits_capped_by_max_s(provider_mock):
    fake = _FakeTime()
    provider_mock.script(PATH, RATE_LIMITED)
    with pytest.raises(ProviderCallError):
        _run(provider_mock, fake, max_attempts=6, max_s=3.0)
    assert fake.waits == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_jitter_stays_within_bounds(provider_mock):
    fake = _FakeTime()
    provider_mock.script(PATH, RATE_LIMITED)
    with pytest.raises(ProviderCallError):
        _run(provider_mock, fake, max_attempts=6, rng=random.Random(3))
    for attempt, wait in enumerate(fake.waits, start=1):
        assert 0.0 <= wait <= min(30.0, 2 ** (attempt - 1))
    assert len(set(fake.waits)) > 1


def test_total_time_budget(provider_mock):
    fake = _FakeTime()
    provider_mock.script(PATH, openai_error(503, "overloaded", "server_error", None))
    with pytest.raises(ProviderCallError) as caught:
        _run(provider_mock, fake, max_attempts=100, max_total_s=10.0)
    # Waits 1, 2, 4 fit into 10 s; the next (8) would end past it.
    assert fake.waits == [1.0, 2.0, 4.0]
    assert caught.value.attempts == 4
    assert caught.value.last_status == 503
    assert "status.openai.com" in str(caught.value)


def test_retry_after_seconds_honored(provider_mock):
    fake = _FakeTime()
    provider_mock.script(PATH, anthropic_error(429, "rate_limit_error", "slow down", **{"retry-after": "7"}), OK_RESPONSES["anthropic"])
    _run(provider_mock, fake, rng=_LowerBound())
    assert fake.waits == [7.0]


def test_retry_after_date_honored(provider_mock):
    fake = _FakeTime()
    wall = 1_750_000_000.0
    date = email.utils.formatdate(wall + 30, usegmt=True)
    provider_mock.script(PATH, openai_error(503, "down", "server_error", None, **{"Retry-After": date}), OK_RESPONSES["openai"])
    call_with_backoff(
        _caller(provider_mock.url + PATH),
        provider="openai",
        sleep=fake.sleep,
        clock=fake.clock,
        wall_clock=lambda: wall,
        rng=_LowerBound(),
    )
    assert fake.waits == [pytest.approx(30.0)]


def test_retry_after_ms_honored(provider_mock):
    fake = _FakeTime()
    provider_mock.script(PATH, openai_error(429, "slow", "requests", "rate_limit_exceeded", **{"retry-after-ms": "2500"}), OK_RESPONSES["openai"])
    _run(provider_mock, fake, rng=_LowerBound())
    assert fake.waits == [2.5]


def test_google_retry_info_honored(provider_mock):
    fake = _FakeTime()
    path = "/google/v1beta/models/m:generateContent"
    details = google_quota_details("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "15", "12s")
    provider_mock.script(path, google_error(429, "RESOURCE_EXHAUSTED", "quota", details), OK_RESPONSES["google"])
    _run(provider_mock, fake, provider="google", path=path, rng=_LowerBound())
    assert fake.waits == [12.0]


def test_retry_after_beyond_budget_stops(provider_mock):
    fake = _FakeTime()
    provider_mock.script(PATH, anthropic_error(429, "rate_limit_error", "slow down", **{"retry-after": "120"}))
    with pytest.raises(ProviderCallError) as caught:
        _run(provider_mock, fake, max_total_s=10.0)
    assert fake.waits == []
    assert caught.value.attempts == 1
    assert "asked to wait 120 s" in str(caught.value)


@pytest.mark.parametrize(
    "response",
    [
        openai_error(400, "bad request", "invalid_request_error", None),
        openai_error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"),
        openrouter_error(402, "Insufficient credits"),
        anthropic_error(403, "permission_error", "not allowed"),
        openai_error(404, "The model does not exist", "invalid_request_error", "model_not_found"),
        openai_error(429, "You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
    ],
    ids=["400", "401", "402", "403", "404", "429-quota"],
)
def test_client_errors_not_retried(provider_mock, response):
    fake = _FakeTime()
    provider_mock.script(PATH, response)
    with pytest.raises(ProviderHTTPError) as caught:
        _run(provider_mock, fake)
    assert isinstance(caught.value, SplitkeyError)
    assert caught.value.status == response.status
    assert len(provider_mock.requests_to(PATH)) == 1
    assert fake.waits == []


def test_daily_quota_not_retried(provider_mock):
    fake = _FakeTime()
    path = "/google/v1beta/models/m:generateContent"
    details = google_quota_details("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "50", "37s")
    provider_mock.script(path, google_error(429, "RESOURCE_EXHAUSTED", "quota", details))
    with pytest.raises(ProviderHTTPError):
        _run(provider_mock, fake, provider="google", path=path)
    assert fake.waits == []


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504, 529])
def test_transient_statuses_retried(provider_mock, status):
    fake = _FakeTime()
    provider_mock.script(PATH, MockResponse(status, {"error": {"message": "try later"}}), OK_RESPONSES["openai"])
    assert _run(provider_mock, fake).status == 200
    assert len(fake.waits) == 1


def test_connection_refused_retried():
    fake = _FakeTime()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ProviderCallError) as caught:
        call_with_backoff(
            _caller(f"http://127.0.0.1:{port}/v1"),
            provider="openai",
            max_attempts=3,
            sleep=fake.sleep,
            clock=fake.clock,
            rng=_UpperBound(),
        )
    assert caught.value.attempts == 3
    assert caught.value.last_status is None
    assert caught.value.last_reason == "connection"
    assert "could not be reached" in str(caught.value)


def test_other_exceptions_propagate_once():
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("bug in the caller")

    with pytest.raises(ValueError):
        call_with_backoff(broken, provider="openai", sleep=lambda s: None)
    assert calls == [1]


def test_invalid_limits_rejected():
    with pytest.raises(ValueError):
        call_with_backoff(lambda: None, provider="openai", max_attempts=0)


def test_retry_after_parsing():
    def error(**headers):
        return ProviderHTTPError("openai", 429, headers)

    assert retry_after_seconds(error(**{"retry-after": "3"})) == 3.0
    assert retry_after_seconds(error(**{"retry-after": "soon"})) is None
    assert retry_after_seconds(error()) is None
    assert retry_after_seconds(ValueError()) is None
