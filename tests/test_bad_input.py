"""Bad input, from the client library and from raw gRPC stubs, against the real servers.

Each rejected request must get a precise status and a message that names the
field and the fix, must not echo key or share bytes, and must leave the
servers serving: a valid decrypt works after every case. Raw stubs from
`splitkey.v1` send what the client library would reject before sending.
"""

from __future__ import annotations

import base64
import secrets

import grpc
import nacl.public
import pytest

from splitkey import record
from splitkey.errors import InvalidInputError, KeyFormatError, NotFoundError
from splitkey.v1 import common_pb2, keystore_pb2, secret_pb2
from tests.raw_rpc import TRUST_DOMAIN, keystore_stub, raw_channel, secret_stub

GOOD_WORKSPACE = "bad-input-good"


@pytest.fixture(scope="module")
def good_key(app, worker):
    key = f"sk-proj-TESTONLY-{secrets.token_hex(16)}"
    app.add_key(GOOD_WORKSPACE, "openai", key)
    assert worker.decrypt(GOOD_WORKSPACE, "openai").reveal() == key
    return key


@pytest.fixture
def still_serving(deployment, worker, good_key):
    """After the test, check that both servers run and a valid decrypt still works."""
    yield
    assert deployment.keystore.alive()
    assert deployment.secret.alive()
    assert worker.decrypt(GOOD_WORKSPACE, "openai").reveal() == good_key


@pytest.fixture(scope="module")
def channels(deployment):
    opened = {
        (role, server): raw_channel(deployment, role, server)
        for role in ("app", "worker")
        for server in ("keystore", "secret")
    }
    yield opened
    for channel in opened.values():
        channel.close()


def _stub(channels, role: str, server: str):
    channel = channels[(role, server)]
    return keystore_stub(channel) if server == "keystore" else secret_stub(channel)


def _assert_no_echo(text: str, *blobs: bytes) -> None:
    """Fail if `text` contains any blob raw, in hex or in base64."""
    for blob in blobs:
        assert blob.hex() not in text
        assert base64.b64encode(blob).decode() not in text
        assert blob.decode("latin-1") not in text


# -- keys rejected by the client library before anything is sent --------------------------


def _new_random_part() -> str:
    return secrets.token_hex(12)


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize(
    "pasted, expected",
    [
        ("", ["empty", "paste the whole key"]),
        ("  \r\n\t\u00a0", ["empty", "paste the whole key"]),
        ("sk-proj-" + "a" * 248, ["256 bytes", "maximum of 255 bytes"]),
        ("sk-proj-TESTONLY-ab\x07{random}", ["U+0007", "position 20", "copy the key again"]),
        ("sk-proj-TESTONLY-ab\x00{random}", ["U+0000", "position 20"]),
        ("sk-proj-TESTONLY-ab\u028b{random}", ["U+028B", "position 20"]),
        ("sk-proj-TESTONLY-ab {random}", ["whitespace", "position 20"]),
    ],
    ids=["empty", "only-whitespace", "256-bytes", "bell", "nul", "look-alike-letter", "inner-space"],
)
def test_bad_key_rejected_by_client(app, pasted, expected):
    random_part = _new_random_part()
    key = pasted.format(random=random_part)
    workspace = f"bad-key-{secrets.token_hex(4)}"

    with pytest.raises(KeyFormatError) as caught:
        app.add_key(workspace, "openai", key)

    message = str(caught.value)
    for fragment in expected:
        assert fragment in message
    if len(key) >= 8:
        assert key not in message
    assert random_part not in message
    # Nothing was stored.
    with pytest.raises(NotFoundError):
        app.list_keys(workspace)


@pytest.mark.usefixtures("still_serving")
def test_key_of_max_length_accepted(app, worker):
    key = "sk-proj-" + secrets.token_hex(200)[:247]
    assert len(key.encode()) == record.MAX_KEY_BYTES == 255

    app.add_key("bad-input-longest", "openai", key)

    assert worker.decrypt("bad-input-longest", "openai").reveal() == key


@pytest.mark.usefixtures("still_serving")
def test_key_as_bytes_rejected(app):
    key = b"sk-proj-TESTONLY-\xff\xfe" + secrets.token_hex(12).encode()

    with pytest.raises(KeyFormatError) as caught:
        app.add_key("bad-input-bytes", "openai", key)

    assert "must be text" in str(caught.value)
    _assert_no_echo(str(caught.value), key)


@pytest.mark.usefixtures("still_serving")
def test_unknown_provider_rejected_by_client(app):
    with pytest.raises(InvalidInputError) as caught:
        app.add_key("bad-input-provider", "mistral", f"sk-TESTONLY-{secrets.token_hex(16)}")

    message = str(caught.value)
    assert "unknown provider 'mistral'" in message
    assert "anthropic, google, openai, openrouter" in message


# -- requests the servers must reject -------------------------------------------------------


def _context(**changes) -> common_pb2.KeyContext:
    fields = {
        "format_version": 1,
        "deployment": TRUST_DOMAIN,
        "workspace": "bad-input-put",
        "provider": "openai",
        "record_id": secrets.token_hex(16),
    }
    fields.update(changes)
    return common_pb2.KeyContext(**fields)


# Distinctive bytes, so an echo of them in a message would be found.
_SHARE = secrets.token_bytes(record.SHARE_BYTES)
_CIPHERTEXT = secrets.token_bytes(record.CIPHERTEXT_BYTES)
_WRAP = (1).to_bytes(4, "big") + secrets.token_bytes(record.WRAP_BYTES - 4)


def _put(**changes) -> keystore_pb2.PutKeyRequest:
    fields = {
        "request_id": secrets.token_hex(8),
        "context": _context(),
        "ciphertext": _CIPHERTEXT,
        "share_a": _SHARE,
        "wrap_b": _WRAP,
        "key_hint": "sk-p…abcd",
    }
    fields.update(changes)
    return keystore_pb2.PutKeyRequest(**{name: value for name, value in fields.items() if value is not None})


def _fetch(**changes) -> keystore_pb2.FetchKeyRequest:
    fields = {
        "request_id": secrets.token_hex(8),
        "workspace": GOOD_WORKSPACE,
        "model": "openai/gpt-4o",
        "reply_key": bytes(nacl.public.PrivateKey.generate().public_key),
    }
    fields.update(changes)
    return keystore_pb2.FetchKeyRequest(**fields)


def _wrap_share(**changes) -> secret_pb2.WrapShareRequest:
    fields = {"request_id": secrets.token_hex(8), "context": _context(), "share_b": _SHARE}
    fields.update(changes)
    return secret_pb2.WrapShareRequest(**fields)


INVALID = grpc.StatusCode.INVALID_ARGUMENT

# (id, role, server, method, request, status, fragments the details must contain)
_SERVER_CASES = [
    ("put-short-request-id", "app", "keystore", "PutKey", _put(request_id="r1"), INVALID,
     ["request_id", "8 to 64 characters", "a UUID works"]),
    ("put-missing-context", "app", "keystore", "PutKey", _put(context=None), INVALID,
     ["context is missing", "KeyContext"]),
    ("put-upper-case-workspace", "app", "keystore", "PutKey", _put(context=_context(workspace="Bad-Input")), INVALID,
     ["context.workspace", "lower-case"]),
    ("put-control-character-workspace", "app", "keystore", "PutKey",
     _put(context=_context(workspace="bad\x07input")), INVALID, ["context.workspace", "lower-case"]),
    ("put-record-id-not-hex", "app", "keystore", "PutKey",
     _put(context=_context(record_id="z" * 32)), INVALID, ["context.record_id", "32 lower-case hex digits"]),
    ("put-record-id-upper-case", "app", "keystore", "PutKey",
     _put(context=_context(record_id="A" * 32)), INVALID, ["context.record_id", "32 lower-case hex digits"]),
    ("put-unknown-provider", "app", "keystore", "PutKey", _put(context=_context(provider="mistral")), INVALID,
     ["context.provider", "anthropic, google, openai, openrouter"]),
    ("put-other-deployment", "app", "keystore", "PutKey", _put(context=_context(deployment="other.test")), INVALID,
     ["context.deployment", TRUST_DOMAIN]),
    ("put-format-version", "app", "keystore", "PutKey", _put(context=_context(format_version=2)), INVALID,
     ["context.format_version must be 1"]),
    ("put-empty-ciphertext", "app", "keystore", "PutKey", _put(ciphertext=b""), INVALID,
     [f"ciphertext must be exactly {record.CIPHERTEXT_BYTES} bytes", "got 0"]),
    ("put-short-ciphertext", "app", "keystore", "PutKey", _put(ciphertext=_CIPHERTEXT[:-1]), INVALID,
     [f"ciphertext must be exactly {record.CIPHERTEXT_BYTES} bytes", f"got {record.CIPHERTEXT_BYTES - 1}"]),
    ("put-short-share-a", "app", "keystore", "PutKey", _put(share_a=_SHARE[:31]), INVALID,
     ["share_a must be exactly 32 bytes", "got 31"]),
    ("put-long-share-a", "app", "keystore", "PutKey", _put(share_a=_SHARE + b"\x00"), INVALID,
     ["share_a must be exactly 32 bytes", "got 33"]),
    ("put-short-wrap-b", "app", "keystore", "PutKey", _put(wrap_b=_WRAP[:-1]), INVALID,
     [f"wrap_b must be exactly {record.WRAP_BYTES} bytes", f"got {record.WRAP_BYTES - 1}"]),
    ("put-long-key-hint", "app", "keystore", "PutKey", _put(key_hint="x" * 40), INVALID,
     ["key_hint must be at most 16 characters"]),
    ("fetch-short-request-id", "worker", "keystore", "FetchKey", _fetch(request_id="abc"), INVALID,
     ["request_id", "8 to 64 characters"]),
    ("fetch-upper-case-workspace", "worker", "keystore", "FetchKey", _fetch(workspace="Bad-Input-Good"), INVALID,
     ["workspace must be", "lower-case"]),
    ("fetch-control-character-workspace", "worker", "keystore", "FetchKey", _fetch(workspace="bad\ninput"), INVALID,
     ["workspace must be", "lower-case"]),
    ("fetch-unknown-provider", "worker", "keystore", "FetchKey", _fetch(model="mistral/large"), INVALID,
     ["model (provider part)", "anthropic, google, openai, openrouter"]),
    ("fetch-short-reply-key", "worker", "keystore", "FetchKey", _fetch(reply_key=_SHARE[:31]), INVALID,
     ["reply_key must be a 32-byte X25519 public key", "got 31 bytes"]),
    ("fetch-unknown-workspace", "worker", "keystore", "FetchKey", _fetch(workspace="bad-input-nobody"),
     grpc.StatusCode.NOT_FOUND, ["'bad-input-nobody'", "add"]),
    ("list-unknown-workspace", "app", "keystore", "ListKeys", keystore_pb2.ListKeysRequest(workspace="bad-input-nobody"),
     grpc.StatusCode.NOT_FOUND, ["'bad-input-nobody'"]),
    ("list-upper-case-workspace", "app", "keystore", "ListKeys", keystore_pb2.ListKeysRequest(workspace="NOBODY"),
     INVALID, ["workspace must be", "lower-case"]),
    ("wrap-short-share-b", "app", "secret", "WrapShare", _wrap_share(share_b=_SHARE[:16]), INVALID,
     ["share_b must be exactly 32 bytes", "got 16"]),
    ("wrap-short-request-id", "app", "secret", "WrapShare", _wrap_share(request_id="x"), INVALID,
     ["request_id", "8 to 64 characters"]),
    ("wrap-bad-record-id", "app", "secret", "WrapShare", _wrap_share(context=_context(record_id="1234")), INVALID,
     ["context.record_id", "32 lower-case hex digits"]),
]


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize(
    "role, server, method, request_message, code, fragments",
    [case[1:] for case in _SERVER_CASES],
    ids=[case[0] for case in _SERVER_CASES],
)
def test_server_rejects_bad_field(channels, role, server, method, request_message, code, fragments):
    with pytest.raises(grpc.RpcError) as caught:
        getattr(_stub(channels, role, server), method)(request_message, timeout=10)

    assert caught.value.code() == code
    details = caught.value.details()
    for fragment in fragments:
        assert fragment in details
    _assert_no_echo(details, _SHARE, _CIPHERTEXT, _WRAP[4:])


def _fetched(channels, request_id: str, reply_public: bytes) -> keystore_pb2.FetchKeyResponse:
    return _stub(channels, "worker", "keystore").FetchKey(
        _fetch(request_id=request_id, reply_key=reply_public), timeout=10
    )


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize(
    "change, code, fragments",
    [
        ({"wrap_b": b"\x00\x00\x00\x01" + b"\x07" * 20}, INVALID, ["wrap_b must be exactly 64 bytes", "got 24"]),
        ({"reply_key": b"\x07" * 16}, INVALID, ["reply_key must be a 32-byte X25519 public key", "got 16 bytes"]),
        # A missing grant is a bad request and an unauthorized one; either status is precise.
        ({"grant": None}, {INVALID, grpc.StatusCode.PERMISSION_DENIED}, ["grant is missing", "Keystore.FetchKey"]),
        ({"record_id": "0" * 32}, grpc.StatusCode.PERMISSION_DENIED, ["grant was issued for another record"]),
        ({"request_id": "short"}, INVALID, ["request_id", "8 to 64 characters"]),
    ],
    ids=["short-wrap-b", "short-reply-key", "missing-grant", "unknown-record", "short-request-id"],
)
def test_unwrap_rejects_bad_field(channels, change, code, fragments):
    request_id = secrets.token_hex(8)
    reply_public = bytes(nacl.public.PrivateKey.generate().public_key)
    fetched = _fetched(channels, request_id, reply_public)
    context = common_pb2.KeyContext()
    context.CopyFrom(fetched.context)
    if "record_id" in change:
        context.record_id = change["record_id"]
    fields = {
        "request_id": change.get("request_id", request_id),
        "context": context,
        "wrap_b": change.get("wrap_b", fetched.wrap_b),
        "grant": change.get("grant", fetched.grant),
        "reply_key": change.get("reply_key", reply_public),
    }
    request_message = secret_pb2.UnwrapShareRequest(**{name: value for name, value in fields.items() if value is not None})

    with pytest.raises(grpc.RpcError) as caught:
        _stub(channels, "worker", "secret").UnwrapShare(request_message, timeout=10)

    assert caught.value.code() in (code if isinstance(code, set) else {code})
    details = caught.value.details()
    for fragment in fragments:
        assert fragment in details
    _assert_no_echo(details, fetched.wrap_b, fetched.sealed_share_a, fetched.ciphertext)


# -- messages that are too large or are not protobuf at all ---------------------------------


@pytest.mark.usefixtures("still_serving")
def test_oversized_message_resource_exhausted(channels):
    request_message = _put(ciphertext=secrets.token_bytes(70 * 1024))
    assert request_message.ByteSize() > 64 * 1024

    with pytest.raises(grpc.RpcError) as caught:
        _stub(channels, "app", "keystore").PutKey(request_message, timeout=10)

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The limit is grpc's max_receive_message_length; grpc words the message itself.
    assert "65536" in caught.value.details()


@pytest.mark.usefixtures("still_serving")
def test_message_just_under_limit_reaches_handler(channels):
    """Check that a message under the 64 KiB limit reaches the handler and gets its error."""
    request_message = _put(ciphertext=bytes(60 * 1024))

    with pytest.raises(grpc.RpcError) as caught:
        _stub(channels, "app", "keystore").PutKey(request_message, timeout=10)

    assert caught.value.code() == INVALID
    assert "ciphertext must be exactly" in caught.value.details()


# Serialized requests that protobuf cannot parse. The guard parses requests
# itself after authorization, so an allowed caller gets INVALID_ARGUMENT and an
# unauthorized one PERMISSION_DENIED, never grpc's INTERNAL.
_GARBAGE = {
    "random-bytes": b"\xff" * 40,
    "invalid-utf8-in-string-field": b"\x12\x02\xff\xfe",
    "truncated-length-delimited-field": b"\x0a\x05ab",
    "wrong-wire-type-for-string": b"\x0d\x01\x02\x03\x04",
}


@pytest.mark.usefixtures("still_serving")
@pytest.mark.parametrize("payload", _GARBAGE.values(), ids=_GARBAGE.keys())
@pytest.mark.parametrize(
    "role, server, method",
    [("worker", "keystore", "FetchKey"), ("app", "keystore", "PutKey"), ("worker", "secret", "UnwrapShare")],
)
def test_unparsable_request_does_not_crash(channels, role, server, method, payload):
    service = "splitkey.v1.Keystore" if server == "keystore" else "splitkey.v1.SecretServer"
    call = channels[(role, server)].unary_unary(
        f"/{service}/{method}", request_serializer=None, response_deserializer=None
    )

    with pytest.raises(grpc.RpcError) as caught:
        call(payload, timeout=10)

    # Some payloads parse as unknown fields and fail the field checks instead.
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _assert_no_echo(caught.value.details(), payload)


@pytest.mark.usefixtures("still_serving")
def test_unparsable_request_from_wrong_role_denied(channels):
    call = channels[("worker", "keystore")].unary_unary(
        "/splitkey.v1.Keystore/PutKey", request_serializer=None, response_deserializer=None
    )

    with pytest.raises(grpc.RpcError) as caught:
        call(b"\xff" * 40, timeout=10)

    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.usefixtures("still_serving")
def test_unknown_method_unimplemented(channels):
    call = channels[("worker", "keystore")].unary_unary(
        "/splitkey.v1.Keystore/DumpEverything", request_serializer=None, response_deserializer=None
    )

    with pytest.raises(grpc.RpcError) as caught:
        call(b"", timeout=10)

    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
