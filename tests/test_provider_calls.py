"""KeyClient.call and check_key: one decryption per logical call, provider retries, live checks."""

from __future__ import annotations

import secrets
import tomllib

import pytest
import tomli_w

from client import KeyClient
from client.providers import CheckOutcome, ProviderCallError, ProviderHTTPError
from client.providers.probes import build_probe_request
from client.providers.transport import build_opener, send
from tests.provider_mock import PROBE_PATHS, MockResponse, ProviderMock, anthropic_error, openai_error

OPENAI_KEY = "sk-proj-TESTONLY-calls" + secrets.token_hex(12)
ANTHROPIC_KEY = "sk-ant-api03-TESTONLY-calls" + secrets.token_hex(12)
OK_BODY = {"id": "chatcmpl-test", "choices": [{"message": {"role": "assistant", "content": "ok"}}]}


@pytest.fixture(scope="module")
def stored(deployment, app):
    app.add_key("ws-calls", "openai", OPENAI_KEY)
    app.add_key("ws-calls", "anthropic", ANTHROPIC_KEY)
    return "ws-calls"


@pytest.fixture
def mock():
    with ProviderMock() as started:
        yield started


def _client_via_mock(deployment, mock, tmp_path, role: str, **tables) -> KeyClient:
    """A real client of `role` whose [providers] base URLs point at the local mock."""
    source = deployment.client_config(role)
    config = tomllib.loads(source.read_text())
    for table in ("keystore", "secret"):
        for name in ("cert", "key", "ca"):
            config[table][name] = str((source.parent / config[table][name]).resolve())
    endpoints = mock.endpoints()
    config["providers"] = {name: endpoints.base_url(name) for name in ("openai", "anthropic", "google", "openrouter")}
    config["providers"]["use_environment_proxies"] = False
    config.update(tables)
    path = tmp_path / f"client-{role}-mock.toml"
    path.write_text(tomli_w.dumps(config))
    return KeyClient.from_config(path, harden=False)


@pytest.fixture
def worker_via_mock(deployment, mock, tmp_path):
    """A worker client using the mock, with short provider backoff."""
    retry = {"max_attempts": 4, "max_total_s": 20.0, "initial_s": 0.05, "max_s": 0.5}
    with _client_via_mock(deployment, mock, tmp_path, "worker", provider_retry=retry) as client:
        yield client


def _generate(client: KeyClient):
    """The function a worker passes to call(): one generation request with the decrypted key."""
    opener = build_opener(False)

    def generate(key):
        request = build_probe_request(key.provider, client.endpoints(), key)
        return send(key.provider, request, key, timeout_s=5, opener=opener)

    return generate


def _fetches(deployment, marker_count_before: int) -> int:
    return deployment.keystore.stderr().count("released record") - marker_count_before


def test_call_decrypts_once_and_retries_429(deployment, stored, mock, worker_via_mock):
    mock.script(PROBE_PATHS["openai"],
                openai_error(429, "Rate limit reached", "requests", "rate_limit_exceeded"),
                MockResponse(200, OK_BODY))
    before = deployment.keystore.stderr().count("released record")
    worker_via_mock.call(stored, "openai/gpt-4o-mini", _generate(worker_via_mock))
    requests = mock.requests_to(PROBE_PATHS["openai"])
    assert len(requests) == 2
    assert all(r.headers["authorization"] == f"Bearer {OPENAI_KEY}" for r in requests)
    assert _fetches(deployment, before) == 1


def test_call_429_forever_gives_final_error(stored, mock, worker_via_mock):
    mock.script(PROBE_PATHS["openai"], openai_error(429, "Rate limit reached", "requests", "rate_limit_exceeded"))
    with pytest.raises(ProviderCallError) as caught:
        worker_via_mock.call(stored, "openai", _generate(worker_via_mock))
    message = str(caught.value)
    assert "4 attempt" in message
    assert "429" in message
    assert "tier" in message
    assert OPENAI_KEY not in message
    assert len(mock.requests_to(PROBE_PATHS["openai"])) == 4


def test_call_honors_retry_after(stored, mock, worker_via_mock):
    import time

    mock.script(PROBE_PATHS["anthropic"],
                anthropic_error(429, "rate_limit_error", "Number of request tokens has exceeded your rate limit",
                                **{"retry-after": "1"}),
                MockResponse(200, {"id": "msg_test", "content": [{"type": "text", "text": "ok"}]}))
    started = time.monotonic()
    worker_via_mock.call(stored, "anthropic", _generate(worker_via_mock))
    assert time.monotonic() - started >= 1.0


@pytest.mark.parametrize("status", [400, 401, 402, 403])
def test_call_does_not_retry_client_errors(stored, mock, worker_via_mock, status):
    mock.script(PROBE_PATHS["openai"], openai_error(status, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"))
    with pytest.raises(ProviderHTTPError) as caught:
        worker_via_mock.call(stored, "openai", _generate(worker_via_mock))
    assert caught.value.status == status
    assert len(mock.requests_to(PROBE_PATHS["openai"])) == 1


def test_check_stored_key_valid(stored, mock, worker_via_mock):
    mock.script(PROBE_PATHS["openai"], MockResponse(200, OK_BODY))
    result = worker_via_mock.check_key(stored, "openai")
    assert result.outcome == CheckOutcome.VALID
    assert OPENAI_KEY not in repr(result)


def test_check_stored_key_incorrect(stored, mock, worker_via_mock):
    mock.script(PROBE_PATHS["openai"], openai_error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"))
    result = worker_via_mock.check_key(stored, "openai")
    assert result.outcome == CheckOutcome.INCORRECT_KEY


def test_add_with_check_stores_valid_key(deployment, mock, tmp_path):
    from client.key_client import KeyCheckError

    app = _app_via_mock(deployment, mock, tmp_path)
    app.set_mode("ws-checked", "byok")
    mock.script(PROBE_PATHS["anthropic"], MockResponse(200, {"id": "msg_test", "content": []}))
    added = app.add_key("ws-checked", "anthropic", ANTHROPIC_KEY, check=True)
    assert added.record_id
    mock.script(PROBE_PATHS["openai"], openai_error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"))
    with pytest.raises(KeyCheckError) as caught:
        app.add_key("ws-checked", "openai", OPENAI_KEY, check=True)
    assert caught.value.result.outcome == CheckOutcome.INCORRECT_KEY
    assert OPENAI_KEY not in str(caught.value)
    assert [info.provider for info in app.list_keys("ws-checked")] == ["anthropic"]
    app.close()


def test_checks_rate_limited_per_workspace(deployment, mock, tmp_path):
    from splitkey.errors import ResourceExhaustedError

    app = _app_via_mock(deployment, mock, tmp_path)
    app.set_mode("ws-limited", "byok")
    mock.script(PROBE_PATHS["openai"], openai_error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"))
    outcomes = []
    for _ in range(5):
        with pytest.raises(Exception) as caught:
            app.add_key("ws-limited", "openai", OPENAI_KEY, check=True)
        outcomes.append(type(caught.value).__name__)
    assert outcomes == ["KeyCheckError"] * 5
    with pytest.raises(ResourceExhaustedError):
        app.add_key("ws-limited", "openai", OPENAI_KEY, check=True)
    assert len(mock.requests_to(PROBE_PATHS["openai"])) == 5
    app.close()


def _app_via_mock(deployment, mock, tmp_path) -> KeyClient:
    return _client_via_mock(deployment, mock, tmp_path, "app")
