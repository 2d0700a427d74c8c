"""A local stand-in for the four AI providers' HTTP APIs, for tests.

`ProviderMock` is a threaded HTTP server on 127.0.0.1 with an ephemeral port.
Each test scripts a sequence of responses per path; the last response repeats
once the sequence is used up. Every request is recorded with its method, path,
full target (path and query), headers and JSON body, so tests can check where
the key travelled.

The canned responses below reproduce the status codes and error bodies that
the providers document (OpenAI error codes guide, Anthropic "HTTP errors"
page, Gemini API troubleshooting guide, OpenRouter "Errors" page). Message
texts are shortened; every value is made up.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from client.providers import ProviderEndpoints


@dataclass
class MockResponse:
    """One scripted response. `delay_s` delays it, to provoke client timeouts."""

    status: int = 200
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class RecordedRequest:
    """One request as the mock received it; header names are lower-case."""

    method: str
    path: str
    target: str
    headers: dict[str, str]
    body: object


# Path of the one-token generation request per provider, under the mock's base URLs.
PROBE_PATHS = {
    "openai": "/openai/v1/chat/completions",
    "anthropic": "/anthropic/v1/messages",
    "google": "/google/v1beta/models/gemini-2.5-flash-lite:generateContent",
    "openrouter": "/openrouter/api/v1/chat/completions",
}


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (name fixed by http.server)
        self._handle()

    def do_GET(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        path = self.path.split("?", 1)[0]
        mock = self.server.mock
        mock._record(
            RecordedRequest(
                self.command,
                path,
                self.path,
                {name.lower(): value for name, value in self.headers.items()},
                body,
            )
        )
        response = mock._next_response(path)
        if response.delay_s and mock._stopping.wait(response.delay_s):
            return
        payload = response.body
        if isinstance(payload, (dict, list)):
            data = json.dumps(payload).encode()
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = payload or b""
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client timed out before the response, as the test intended.
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mock: "ProviderMock"


class ProviderMock:
    """Threaded local provider server. Use as a context manager or through the fixture."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[MockResponse]] = {}
        self._stopping = threading.Event()
        self.requests: list[RecordedRequest] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.mock = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "ProviderMock":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "ProviderMock":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def endpoints(self, **overrides: object) -> ProviderEndpoints:
        """Return ProviderEndpoints whose base URLs all point at this mock."""
        settings = {
            "openai": f"{self.url}/openai/v1",
            "anthropic": f"{self.url}/anthropic/v1",
            "google": f"{self.url}/google/v1beta",
            "openrouter": f"{self.url}/openrouter/api/v1",
            "use_environment_proxies": False,
        }
        settings.update(overrides)
        return ProviderEndpoints(**settings)

    def script(self, path: str, *responses: MockResponse) -> None:
        """Respond to requests for `path` with `responses` in order, repeating the last one."""
        if not responses:
            raise ValueError("script() needs at least one response")
        with self._lock:
            self._scripts[path] = list(responses)

    def script_probe(self, provider: str, *responses: MockResponse) -> None:
        """Script the responses to a provider's key-check request."""
        self.script(PROBE_PATHS[provider], *responses)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Return the recorded requests for one path."""
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_response(self, path: str) -> MockResponse:
        with self._lock:
            queue = self._scripts.get(path)
            if not queue:
                return MockResponse(404, {"error": {"message": f"mock has no script for {path}"}})
            return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def provider_mock():
    """A started ProviderMock, stopped after the test."""
    with ProviderMock() as mock:
        yield mock


# --- Documented responses -------------------------------------------------


def openai_error(status: int, message: str, error_type: str, code: str | None, **headers: str) -> MockResponse:
    """OpenAI error body: {"error": {"message", "type", "param", "code"}}."""
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return MockResponse(status, body, dict(headers))


def anthropic_error(status: int, error_type: str, message: str, **headers: str) -> MockResponse:
    """Anthropic error body: {"type": "error", "error": {"type", "message"}, "request_id"}."""
    body = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": "req_011TESTONLY",
    }
    return MockResponse(status, body, dict(headers))


def google_error(
    status: int, grpc_status: str, message: str, details: list | None = None, **headers: str
) -> MockResponse:
    """Google error body: {"error": {"code", "message", "status", "details"}}."""
    body = {"error": {"code": status, "message": message, "status": grpc_status}}
    if details is not None:
        body["error"]["details"] = details
    return MockResponse(status, body, dict(headers))


def google_error_info(reason: str) -> dict:
    """A google.rpc.ErrorInfo detail naming the failure reason."""
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


def google_quota_details(quota_id: str, quota_value: str, retry_delay: str) -> list:
    """QuotaFailure and RetryInfo details of a Gemini 429 RESOURCE_EXHAUSTED response."""
    return [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": quota_id,
                    "quotaValue": quota_value,
                }
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay},
    ]


def openrouter_error(status: int, message: str, metadata: dict | None = None, **headers: str) -> MockResponse:
    """OpenRouter error body: {"error": {"code", "message", "metadata"}}."""
    body: dict = {"error": {"code": status, "message": message}}
    if metadata is not None:
        body["error"]["metadata"] = metadata
    return MockResponse(status, body, dict(headers))


OPENAI_OK = MockResponse(
    200,
    {
        "id": "chatcmpl-TESTONLY",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "P"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
    },
)
ANTHROPIC_OK = MockResponse(
    200,
    {
        "id": "msg_TESTONLY",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "P"}],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 8, "output_tokens": 1},
    },
)
GOOGLE_OK = MockResponse(
    200,
    {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "P"}]}, "finishReason": "MAX_TOKENS"}
        ],
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
    },
)
OPENROUTER_OK = MockResponse(
    200,
    {
        "id": "gen-TESTONLY",
        "object": "chat.completion",
        "model": "openai/gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "P"}, "finish_reason": "length"}],
    },
)
OK_RESPONSES = {
    "openai": OPENAI_OK,
    "anthropic": ANTHROPIC_OK,
    "google": GOOGLE_OK,
    "openrouter": OPENROUTER_OK,
}
