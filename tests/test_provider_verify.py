"""Live key checks against the local provider mock: one outcome per documented response."""

import random

import pytest

from client.providers import (
    CheckOutcome,
    CheckRateLimiter,
    CheckRetryPolicy,
    ProviderEndpoints,
    verify_key,
)
from tests.provider_mock import (  # noqa: F401 (provider_mock is a fixture)
    OK_RESPONSES,
    PROBE_PATHS,
    MockResponse,
    anthropic_error,
    google_error,
    google_error_info,
    google_quota_details,
    openai_error,
    openrouter_error,
    provider_mock,
)
from splitkey.errors import ConfigError, KeyFormatError, ResourceExhaustedError
from splitkey.secret import SecretKey

KEYS = {
    "openai": "sk-proj-TESTONLY_verify-" + "Ab1-" * 10,
    "anthropic": "sk-ant-api03-TESTONLY_verify-" + "Cd2_" * 10,
    "google": "AIzaSyTESTONLY0123456789abcdefghijklmno",
    "openrouter": "sk-or-v1-" + "0123456789abcdef" * 4,
}

AUTH_HEADERS = {
    "openai": ("authorization", "Bearer {key}"),
    "anthropic": ("x-api-key", "{key}"),
    "google": ("x-goog-api-key", "{key}"),
    "openrouter": ("authorization", "Bearer {key}"),
}

MISSING_SCOPES = (
    "You have insufficient permissions for this operation. Missing scopes: model.request. "
    "Check that you have the correct role in your organization (Reader, Writer, Owner) and "
    "project (Member, Owner), and if you're using a restricted API key, that it has the "
    "necessary scopes."
)

# (provider, scripted response, expected outcome, expected missing permission or None)
CASES = [
    ("openai", OK_RESPONSES["openai"], CheckOutcome.VALID, None),
    (
        "openai",
        openai_error(401, "Incorrect API key provided: sk-proj-****ab1-.", "invalid_request_error", "invalid_api_key"),
        CheckOutcome.INCORRECT_KEY,
        None,
    ),
    (
        "openai",
        openai_error(401, "You must be a member of an organization to use the API.", "invalid_request_error", "no_organization"),
        CheckOutcome.WRONG_ACCOUNT_TYPE,
        None,
    ),
    ("openai", openai_error(401, MISSING_SCOPES, "invalid_request_error", "missing_scope"), CheckOutcome.RESTRICTED_KEY, "model.request"),
    ("openai", openai_error(403, MISSING_SCOPES, "invalid_request_error", None), CheckOutcome.RESTRICTED_KEY, "model.request"),
    (
        "openai",
        openai_error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        CheckOutcome.INSUFFICIENT_CREDITS,
        None,
    ),
    (
        "openai",
        openai_error(429, "Rate limit reached for gpt-4o-mini on requests per min (RPM).", "requests", "rate_limit_exceeded"),
        CheckOutcome.COULD_NOT_VERIFY,
        None,
    ),
    ("openai", openai_error(500, "The server had an error while processing your request.", "server_error", None), CheckOutcome.COULD_NOT_VERIFY, None),
    ("openai", openai_error(503, "The engine is currently overloaded, please try again later.", "server_error", None), CheckOutcome.COULD_NOT_VERIFY, None),
    ("anthropic", OK_RESPONSES["anthropic"], CheckOutcome.VALID, None),
    ("anthropic", anthropic_error(401, "authentication_error", "invalid x-api-key"), CheckOutcome.INCORRECT_KEY, None),
    (
        "anthropic",
        anthropic_error(403, "permission_error", "Your API key does not have permission to use the specified resource."),
        CheckOutcome.RESTRICTED_KEY,
        "Your API key does not have permission to use the specified resource.",
    ),
    (
        "anthropic",
        anthropic_error(
            400,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
        ),
        CheckOutcome.INSUFFICIENT_CREDITS,
        None,
    ),
    ("anthropic", anthropic_error(402, "billing_error", "Billing error"), CheckOutcome.INSUFFICIENT_CREDITS, None),
    ("anthropic", anthropic_error(429, "rate_limit_error", "Number of requests has exceeded your rate limit.", **{"retry-after": "1"}), CheckOutcome.COULD_NOT_VERIFY, None),
    ("anthropic", anthropic_error(500, "api_error", "Internal server error"), CheckOutcome.COULD_NOT_VERIFY, None),
    ("anthropic", anthropic_error(529, "overloaded_error", "Overloaded"), CheckOutcome.COULD_NOT_VERIFY, None),
    ("google", OK_RESPONSES["google"], CheckOutcome.VALID, None),
    (
        "google",
        google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [google_error_info("API_KEY_INVALID")]),
        CheckOutcome.INCORRECT_KEY,
        None,
    ),
    (
        "google",
        google_error(
            403,
            "PERMISSION_DENIED",
            "Generative Language API has not been used in project 123456 before or it is disabled.",
            [google_error_info("SERVICE_DISABLED")],
        ),
        CheckOutcome.RESTRICTED_KEY,
        "the Generative Language API enabled in the key's Google Cloud project",
    ),
    (
        "google",
        google_error(
            403,
            "PERMISSION_DENIED",
            "Requests to this API generativelanguage.googleapis.com method GenerateContent are blocked.",
            [google_error_info("API_KEY_SERVICE_BLOCKED")],
        ),
        CheckOutcome.RESTRICTED_KEY,
        "API restrictions that allow generativelanguage.googleapis.com",
    ),
    (
        "google",
        google_error(
            400,
            "FAILED_PRECONDITION",
            "Gemini API free tier is not available in your country. Please enable billing on your project in Google AI Studio.",
        ),
        CheckOutcome.INSUFFICIENT_CREDITS,
        None,
    ),
    (
        "google",
        google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            google_quota_details("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "50", "37s"),
        ),
        CheckOutcome.INSUFFICIENT_CREDITS,
        None,
    ),
    (
        "google",
        google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            google_quota_details("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "15", "1s"),
        ),
        CheckOutcome.COULD_NOT_VERIFY,
        None,
    ),
    ("google", google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."), CheckOutcome.COULD_NOT_VERIFY, None),
    ("openrouter", OK_RESPONSES["openrouter"], CheckOutcome.VALID, None),
    ("openrouter", openrouter_error(401, "User not found."), CheckOutcome.INCORRECT_KEY, None),
    (
        "openrouter",
        openrouter_error(402, "Insufficient credits. Add more using https://openrouter.ai/credits", {"limit_source": "openrouter_credits"}),
        CheckOutcome.INSUFFICIENT_CREDITS,
        None,
    ),
    ("openrouter", openrouter_error(403, "This key is not allowed to use this model."), CheckOutcome.RESTRICTED_KEY, "This key is not allowed to use this model."),
    (
        "openrouter",
        openrouter_error(403, "openai/gpt-4o-mini requires moderation on OpenRouter. Your input was flagged.", {"reasons": ["harassment"]}),
        CheckOutcome.COULD_NOT_VERIFY,
        None,
    ),
    ("openrouter", openrouter_error(429, "Rate limit exceeded: free-models-per-day."), CheckOutcome.INSUFFICIENT_CREDITS, None),
    ("openrouter", openrouter_error(429, "Rate limit exceeded."), CheckOutcome.COULD_NOT_VERIFY, None),
    ("openrouter", openrouter_error(502, "Provider returned error"), CheckOutcome.COULD_NOT_VERIFY, None),
    ("openrouter", openrouter_error(503, "No available model provider that meets your routing requirements"), CheckOutcome.COULD_NOT_VERIFY, None),
]


def _policy(waits=None):
    return CheckRetryPolicy(
        max_attempts=2,
        max_total_s=30.0,
        sleep=(waits.append if waits is not None else (lambda seconds: None)),
        rng=random.Random(7),
    )


def _case_id(case):
    provider, response, outcome, _ = case
    return f"{provider}-{response.status}-{outcome.value}"


@pytest.mark.parametrize(("provider", "response", "outcome", "missing"), CASES, ids=[_case_id(c) for c in CASES])
def test_check_outcome(provider_mock, provider, response, outcome, missing):
    provider_mock.script_probe(provider, response)
    key = KEYS[provider]

    result = verify_key(provider, SecretKey(key), provider_mock.endpoints(), timeout_s=5, retry=_policy())

    assert result.outcome is outcome, result.message
    assert result.provider == provider
    assert result.status == response.status
    assert result.missing_permission == missing
    assert result.ok is (outcome is CheckOutcome.VALID)
    assert key not in result.message
    assert key[-8:] not in repr(result)
    assert result.key_hint == f"{key[:4]}…{key[-4:]}"

    requests = provider_mock.requests_to(PROBE_PATHS[provider])
    retried = response.status >= 500 or (response.status == 429 and outcome is CheckOutcome.COULD_NOT_VERIFY)
    assert len(requests) == (2 if retried else 1)
    header, template = AUTH_HEADERS[provider]
    assert requests[0].headers[header] == template.format(key=key)
    assert key not in requests[0].target


@pytest.mark.parametrize("provider", sorted(KEYS))
def test_probe_asks_for_one_token(provider_mock, provider):
    provider_mock.script_probe(provider, OK_RESPONSES[provider])
    verify_key(provider, KEYS[provider], provider_mock.endpoints(), retry=_policy())

    body = provider_mock.requests_to(PROBE_PATHS[provider])[0].body
    if provider == "google":
        assert body["generationConfig"]["maxOutputTokens"] == 1
        assert body["contents"][0]["parts"][0]["text"]
    else:
        tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        assert tokens == 1
        assert body["messages"][0]["role"] == "user"
        assert body["model"] == provider_mock.endpoints().probe_model(provider)


def test_anthropic_probe_sends_version(provider_mock):
    provider_mock.script_probe("anthropic", OK_RESPONSES["anthropic"])
    verify_key("anthropic", KEYS["anthropic"], provider_mock.endpoints(), retry=_policy())
    headers = provider_mock.requests_to(PROBE_PATHS["anthropic"])[0].headers
    assert headers["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize("status", [400, 401, 402, 403])
def test_client_errors_not_retried(provider_mock, status):
    waits = []
    provider_mock.script_probe("openrouter", openrouter_error(status, "no"))
    verify_key("openrouter", KEYS["openrouter"], provider_mock.endpoints(), retry=_policy(waits))
    assert len(provider_mock.requests_to(PROBE_PATHS["openrouter"])) == 1
    assert waits == []


def test_transient_error_then_valid(provider_mock):
    waits = []
    provider_mock.script_probe("anthropic", anthropic_error(529, "overloaded_error", "Overloaded"), OK_RESPONSES["anthropic"])
    result = verify_key("anthropic", KEYS["anthropic"], provider_mock.endpoints(), retry=_policy(waits))
    assert result.outcome is CheckOutcome.VALID
    assert len(waits) == 1


def test_outage_names_status_page(provider_mock):
    provider_mock.script_probe("openai", openai_error(503, "overloaded", "server_error", None))
    result = verify_key("openai", KEYS["openai"], provider_mock.endpoints(), retry=_policy())
    assert result.outcome is CheckOutcome.COULD_NOT_VERIFY
    assert "not a problem with the key" in result.message
    assert "https://status.openai.com" in result.message


def test_timeout_is_could_not_verify(provider_mock):
    provider_mock.script_probe("google", MockResponse(200, {}, delay_s=10))
    result = verify_key("google", KEYS["google"], provider_mock.endpoints(), timeout_s=0.3, retry=_policy())
    assert result.outcome is CheckOutcome.COULD_NOT_VERIFY
    assert result.status is None
    assert "timeout" in result.message


def test_redirect_not_followed(provider_mock):
    provider_mock.script_probe("openai", MockResponse(307, {}, {"Location": f"{provider_mock.url}/elsewhere"}))
    provider_mock.script("/elsewhere", OK_RESPONSES["openai"])
    result = verify_key("openai", KEYS["openai"], provider_mock.endpoints(), retry=_policy())
    assert result.outcome is CheckOutcome.COULD_NOT_VERIFY
    assert provider_mock.requests_to("/elsewhere") == []


def test_format_failure_sends_nothing(provider_mock):
    provider_mock.script_probe("openai", OK_RESPONSES["openai"])
    with pytest.raises(KeyFormatError, match="Anthropic"):
        verify_key("openai", KEYS["anthropic"], provider_mock.endpoints(), retry=_policy())
    with pytest.raises(KeyFormatError, match="U\\+028B at position 9"):
        verify_key("openai", "sk-proj-\u028bTESTONLY", provider_mock.endpoints(), retry=_policy())
    assert provider_mock.requests == []


def test_rate_limit_per_workspace(provider_mock):
    now = [1000.0]
    limiter = CheckRateLimiter(capacity=2, refill_per_s=0.1, clock=lambda: now[0])
    provider_mock.script_probe("openai", OK_RESPONSES["openai"])
    endpoints = provider_mock.endpoints()

    def check(workspace):
        return verify_key("openai", KEYS["openai"], endpoints, retry=_policy(), rate_limiter=limiter, workspace_id=workspace)

    check("ws-0001")
    check("ws-0001")
    with pytest.raises(ResourceExhaustedError, match="ws-0001.*try again in 10 s"):
        check("ws-0001")
    assert len(provider_mock.requests) == 2

    check("ws-0002")
    now[0] += 10.0
    check("ws-0001")
    assert len(provider_mock.requests) == 4


def test_rate_limiter_forgets_idle_workspaces():
    now = [0.0]
    limiter = CheckRateLimiter(capacity=1, refill_per_s=1.0, clock=lambda: now[0], max_workspaces=2)
    assert limiter.try_acquire("ws-a") == 0.0
    assert limiter.try_acquire("ws-a") == pytest.approx(1.0)
    limiter.try_acquire("ws-b")
    limiter.try_acquire("ws-c")
    assert len(limiter._buckets) == 2


@pytest.mark.parametrize(
    "url",
    [
        "http://api.openai.com/v1",
        "http://10.0.0.5/v1",
        "https://user:pw@api.openai.com/v1",
        "https://api.openai.com/v1?x=1",
        "ftp://api.openai.com",
        "api.openai.com/v1",
    ],
)
def test_endpoints_reject_unsafe_urls(url):
    with pytest.raises(ConfigError):
        ProviderEndpoints(openai=url)


def test_endpoints_accept_loopback_http():
    endpoints = ProviderEndpoints(google="http://127.0.0.1:8080/v1beta/")
    assert endpoints.base_url("Google") == "http://127.0.0.1:8080/v1beta"
    assert endpoints.base_url("openai") == "https://api.openai.com/v1"


def test_endpoints_reject_unknown_probe_provider():
    with pytest.raises(ConfigError, match="mistral"):
        ProviderEndpoints(probe_models={"mistral": "large"})
