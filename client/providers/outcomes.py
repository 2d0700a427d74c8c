"""Outcomes of a live key check, and the mapping from provider errors to them.

The mapping follows each provider's documented statuses and error bodies:

- OpenAI: 401 invalid_api_key (incorrect key), 401 "must be a member of an
  organization" (wrong account type), 401/403 "Missing scopes: ..." (restricted
  key), 429 insufficient_quota (credits), 429 rate limit, 5xx.
- Anthropic: 401 authentication_error, 403 permission_error, 400
  invalid_request_error "credit balance is too low", 402 billing_error, 429
  rate_limit_error, 500 api_error, 529 overloaded_error.
- Google Gemini: 400 INVALID_ARGUMENT with reason API_KEY_INVALID, 400
  FAILED_PRECONDITION (billing), 403 PERMISSION_DENIED (SERVICE_DISABLED,
  API_KEY_SERVICE_BLOCKED), 429 RESOURCE_EXHAUSTED, 5xx.
- OpenRouter: 401 invalid or disabled key, 402 insufficient credits, 403
  moderation or key restrictions, 408, 429, 502, 503.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .backoff import is_quota_exhausted
from .errors import ProviderCallError, ProviderHTTPError
from .formats import PROVIDERS


class CheckOutcome(str, enum.Enum):
    """The one result a live key check reports."""

    VALID = "valid"
    INCORRECT_KEY = "incorrect_key"
    WRONG_ACCOUNT_TYPE = "wrong_account_type"
    RESTRICTED_KEY = "restricted_key"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    # Outage, timeout, 5xx, rate limit: not the key's fault.
    COULD_NOT_VERIFY = "could_not_verify"


@dataclass(frozen=True)
class CheckResult:
    """Result of a live key check. Holds the masked key (first4…last4), never the key."""

    provider: str
    outcome: CheckOutcome
    message: str
    key_hint: str
    status: int | None = None
    # The permission or scope that the provider reported missing, if it named one.
    missing_permission: str | None = None

    @property
    def ok(self) -> bool:
        """True when the key can generate."""
        return self.outcome is CheckOutcome.VALID


_MISSING_SCOPES = re.compile(r"missing scopes?:\s*([A-Za-z0-9_.,:\- ]+?)(?:\.\s|\.$|$)", re.IGNORECASE)


def _missing_scopes(message: str) -> str | None:
    match = _MISSING_SCOPES.search(message)
    return match.group(1).strip() if match else None


def _said(error: ProviderHTTPError) -> str:
    kind = error.error_code or error.error_type
    detail = f"HTTP {error.status}" + (f" {kind}" if kind else "")
    if error.error_message:
        detail += f": {error.error_message}"
    return detail


def _classify_openai(error: ProviderHTTPError, model: str):
    message = error.error_message
    lower = message.lower()
    info = PROVIDERS["openai"]
    scopes = _missing_scopes(message)
    if error.error_code == "missing_scope" or scopes:
        return (
            CheckOutcome.RESTRICTED_KEY,
            f"the OpenAI key is restricted and lacks the permission {scopes or 'model.request'} "
            "needed to generate: edit the key's permissions (Model capabilities: Request) or "
            f"create an unrestricted key at {info.key_console}",
            scopes or "model.request",
        )
    if error.status == 401:
        if "member of an organization" in lower:
            return (
                CheckOutcome.WRONG_ACCOUNT_TYPE,
                "the key's OpenAI account is not a member of an organization, so it cannot "
                "use the API: join or create an organization on the OpenAI platform",
                None,
            )
        if ("ip" in lower and "allowlist" in lower) or "ip not authorized" in lower:
            return (
                CheckOutcome.RESTRICTED_KEY,
                "the OpenAI project's IP allowlist does not include this server's address: "
                "add it to the allowlist",
                "requests from this IP address",
            )
        return (
            CheckOutcome.INCORRECT_KEY,
            f"OpenAI rejected the key as incorrect ({_said(error)}): check that the whole key "
            f"was copied, or create a new one at {info.key_console}",
            None,
        )
    if error.status == 403:
        if "country" in lower or "region" in lower or "territory" in lower:
            return (
                CheckOutcome.COULD_NOT_VERIFY,
                f"OpenAI refuses requests from this server's region ({_said(error)}); this "
                "says nothing about the key",
                None,
            )
        return (
            CheckOutcome.RESTRICTED_KEY,
            f"OpenAI denied the key permission to generate ({_said(error)}): check the key's "
            "permissions and the project's model access",
            None,
        )
    if error.status == 429 and is_quota_exhausted(error):
        return (
            CheckOutcome.INSUFFICIENT_CREDITS,
            "the OpenAI account has no credits or reached its spending limit: add credits or "
            "raise the limit in the billing settings",
            None,
        )
    return None


def _classify_anthropic(error: ProviderHTTPError, model: str):
    lower = error.error_message.lower()
    info = PROVIDERS["anthropic"]
    if error.status == 401:
        return (
            CheckOutcome.INCORRECT_KEY,
            f"Anthropic rejected the key ({_said(error)}): check that the whole key was copied, "
            f"or create a new one at {info.key_console}",
            None,
        )
    if error.status == 403:
        return (
            CheckOutcome.RESTRICTED_KEY,
            f"Anthropic denied the key permission to generate ({_said(error)}): check the "
            "key's workspace and its model access",
            error.error_message or None,
        )
    if error.status == 402 or (
        error.status == 400 and ("credit balance" in lower or "billing" in lower or "spend limit" in lower)
    ):
        return (
            CheckOutcome.INSUFFICIENT_CREDITS,
            "the Anthropic account's credit balance is too low or its spend limit is reached: "
            "buy credits or raise the limit under Plans & Billing",
            None,
        )
    return None


_GOOGLE_RESTRICTIONS = {
    "SERVICE_DISABLED": "the Generative Language API enabled in the key's Google Cloud project",
    "API_KEY_SERVICE_BLOCKED": "API restrictions that allow generativelanguage.googleapis.com",
    "API_KEY_HTTP_REFERRER_BLOCKED": "application restrictions (HTTP referrer) that allow this server",
    "API_KEY_IP_ADDRESS_BLOCKED": "application restrictions (IP address) that allow this server",
}


def _classify_google(error: ProviderHTTPError, model: str):
    lower = error.error_message.lower()
    info = PROVIDERS["google"]
    reason = error.error_code
    if reason in {"API_KEY_INVALID", "API_KEY_EXPIRED"} or "api key not valid" in lower or "api key expired" in lower:
        return (
            CheckOutcome.INCORRECT_KEY,
            f"Google rejected the key ({_said(error)}): check that the whole key was copied, or "
            f"create a new one at {info.key_console}",
            None,
        )
    if error.status == 400 and error.error_type == "FAILED_PRECONDITION":
        if "billing" in lower:
            return (
                CheckOutcome.INSUFFICIENT_CREDITS,
                "the key's Google project needs billing enabled to use the Gemini API from "
                "here: enable billing for the project in Google AI Studio",
                None,
            )
        return (
            CheckOutcome.COULD_NOT_VERIFY,
            f"Google refused the request for a reason unrelated to the key ({_said(error)})",
            None,
        )
    if error.status == 403:
        missing = _GOOGLE_RESTRICTIONS.get(reason)
        return (
            CheckOutcome.RESTRICTED_KEY,
            f"Google denied the key permission to generate ({_said(error)})"
            + (f": the key needs {missing}" if missing else ": check the key's API restrictions"),
            missing or (error.error_message or None),
        )
    if error.status == 429 and is_quota_exhausted(error):
        return (
            CheckOutcome.INSUFFICIENT_CREDITS,
            f"the key's Google project has no quota left for {model} ({_said(error)}): enable "
            "billing or wait for the daily quota to reset",
            None,
        )
    return None


def _classify_openrouter(error: ProviderHTTPError, model: str):
    lower = error.error_message.lower()
    info = PROVIDERS["openrouter"]
    if error.status == 401:
        return (
            CheckOutcome.INCORRECT_KEY,
            f"OpenRouter rejected the key as invalid or disabled ({_said(error)}): check it at "
            f"{info.key_console}",
            None,
        )
    if error.status == 402:
        return (
            CheckOutcome.INSUFFICIENT_CREDITS,
            "the OpenRouter account or key has insufficient credits: add credits or raise the "
            "key's credit limit",
            None,
        )
    if error.status == 403:
        if "moderation" in lower or "flagged" in lower:
            return (
                CheckOutcome.COULD_NOT_VERIFY,
                f"OpenRouter's moderation rejected the check request ({_said(error)}); this says "
                "nothing about the key",
                None,
            )
        return (
            CheckOutcome.RESTRICTED_KEY,
            f"OpenRouter denied the key permission to generate ({_said(error)})",
            error.error_message or None,
        )
    if error.status == 429 and is_quota_exhausted(error):
        return (
            CheckOutcome.INSUFFICIENT_CREDITS,
            f"the OpenRouter key reached its daily request limit ({_said(error)}): add credits "
            "or wait for the limit to reset",
            None,
        )
    return None


_CLASSIFIERS = {
    "openai": _classify_openai,
    "anthropic": _classify_anthropic,
    "google": _classify_google,
    "openrouter": _classify_openrouter,
}


def result_from_http_error(
    error: ProviderHTTPError, *, key_hint: str, probe_model: str
) -> CheckResult:
    """Map a provider's HTTP error response to exactly one check outcome."""
    provider = error.provider
    info = PROVIDERS[provider]
    mapped = _CLASSIFIERS[provider](error, probe_model)
    if mapped is None:
        if error.status == 404:
            message = (
                f"{info.display_name} does not serve the check model {probe_model!r} to this key "
                f"({_said(error)}): configure another probe model, or check the key's model access"
            )
        elif error.status == 429:
            message = (
                f"{info.display_name} is rate-limiting this key ({_said(error)}); this says "
                "nothing about the key: try the check again later"
            )
        elif error.status >= 500:
            message = (
                f"{info.display_name} failed to answer ({_said(error)}); this is not the key's "
                f"fault: check {info.status_page} and try again later"
            )
        else:
            message = (
                f"{info.display_name} rejected the check request for a reason the check does not "
                f"recognize ({_said(error)}); the key may still be valid"
            )
        mapped = (CheckOutcome.COULD_NOT_VERIFY, message, None)
    outcome, message, missing = mapped
    return CheckResult(provider, outcome, message, key_hint, error.status, missing)


def result_from_call_error(error: ProviderCallError, *, key_hint: str) -> CheckResult:
    """Map a provider call that ran out of retries to "could not verify"."""
    info = PROVIDERS[error.provider]
    message = f"could not verify the {info.display_name} key: {error}"
    return CheckResult(error.provider, CheckOutcome.COULD_NOT_VERIFY, message, key_hint, error.last_status)
