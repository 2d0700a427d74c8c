"""Use grants on the real secret server: UnwrapShare releases share_b only under a matching, live grant.

Genuine grants come from Keystore.FetchKey. Expired, future or replayed
grants are signed in the test with the deployment's own grant-signing key, so
only the property under test differs from a valid grant. Every rejection must be
PERMISSION_DENIED with a message that names the reason.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import grpc
import nacl.public
import nacl.signing
import pytest

from splitkey import record
from splitkey.context import Context
from splitkey.grant import issue_grant
from splitkey.keyfiles import load_signing_key
from splitkey.pki.deployment import issue_client
from splitkey.v1 import common_pb2, keystore_pb2, keystore_pb2_grpc, secret_pb2, secret_pb2_grpc
from tests.pki_helpers import raw_channel, spiffe

# The platform's own workspace, so FetchKey returns these keys without depending
# on the API mode of a customer workspace.
WORKSPACE = "platform"
OPENAI_KEY = "sk-proj-TESTONLY-grant1111aaaa2222bbbb3333"
ANTHROPIC_KEY = "sk-ant-api03-TESTONLY-grant4444cccc5555dddd6666"


@dataclass
class Fetched:
    """One FetchKey reply together with the request id and reply key pair that produced it."""

    request_id: str
    reply_private: nacl.public.PrivateKey
    response: keystore_pb2.FetchKeyResponse

    @property
    def reply_key(self) -> bytes:
        return bytes(self.reply_private.public_key)

    def unwrap_request(self, **overrides) -> secret_pb2.UnwrapShareRequest:
        """Build the UnwrapShare request the client library would send, with fields replaced by `overrides`."""
        fields = {
            "request_id": self.request_id,
            "context": self.response.context,
            "wrap_b": self.response.wrap_b,
            "grant": self.response.grant,
            "reply_key": self.reply_key,
        }
        fields.update(overrides)
        return secret_pb2.UnwrapShareRequest(**{name: value for name, value in fields.items() if value is not None})


class Worker:
    """Raw stubs for one worker identity, so a test can send what the client library would not."""

    def __init__(self, deployment, folder: str):
        root = deployment.root
        self.keystore_channel = raw_channel(
            deployment.keystore.port, root / "ca/keystore-ca.pem",
            root / f"clients/{folder}/keystore.pem", root / f"clients/{folder}/keystore.key",
        )
        self.secret_channel = raw_channel(
            deployment.secret.port, root / "ca/secret-ca.pem",
            root / f"clients/{folder}/secret.pem", root / f"clients/{folder}/secret.key",
        )
        self.keystore = keystore_pb2_grpc.KeystoreStub(self.keystore_channel)
        self.secret = secret_pb2_grpc.SecretServerStub(self.secret_channel)

    def fetch(self, provider: str, request_id: str | None = None) -> Fetched:
        request_id = request_id or os.urandom(16).hex()
        reply_private = nacl.public.PrivateKey.generate()
        response = self.keystore.FetchKey(
            keystore_pb2.FetchKeyRequest(
                request_id=request_id, workspace=WORKSPACE, model=provider, reply_key=bytes(reply_private.public_key)
            ),
            timeout=10,
        )
        return Fetched(request_id, reply_private, response)

    def denial(self, request: secret_pb2.UnwrapShareRequest) -> str:
        """Send UnwrapShare, require PERMISSION_DENIED, and return the status message."""
        with pytest.raises(grpc.RpcError) as caught:
            self.secret.UnwrapShare(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, caught.value.details()
        return caught.value.details()

    def close(self) -> None:
        self.keystore_channel.close()
        self.secret_channel.close()


@pytest.fixture(scope="module")
def stored(deployment):
    with deployment.client("security") as security:
        security.add_key(WORKSPACE, "openai", OPENAI_KEY)
        security.add_key(WORKSPACE, "anthropic", ANTHROPIC_KEY)
    return deployment


@pytest.fixture(scope="module")
def worker(stored):
    worker = Worker(stored, "worker")
    yield worker
    worker.close()


@pytest.fixture(scope="module")
def other_worker(stored):
    issue_client(stored.root, "worker", "other")
    worker = Worker(stored, "worker-other")
    yield worker
    worker.close()


@pytest.fixture(scope="module")
def signing_key(stored) -> nacl.signing.SigningKey:
    return load_signing_key(stored.root / "keystore/grant-signing.key")


def _self_issued(signing_key, fetched: Fetched, **overrides) -> common_pb2.UseGrant:
    """Sign a grant for `fetched` with the deployment's key, changing the fields in `overrides`."""
    fields = {
        "worker_identity": spiffe("worker"),
        "request_id": fetched.request_id,
        "context_hash": Context.from_proto(fetched.response.context).digest(),
        "wrap_b": fetched.response.wrap_b,
        "reply_key": fetched.reply_key,
    }
    fields.update(overrides)
    return issue_grant(signing_key, **fields)


def _decrypt(fetched: Fetched, sealed_share_b: bytes) -> str:
    opener = nacl.public.SealedBox(fetched.reply_private)
    share_a = opener.decrypt(fetched.response.sealed_share_a)
    share_b = opener.decrypt(sealed_share_b)
    dek = record.combine_shares(share_a, share_b)
    context = Context.from_proto(fetched.response.context)
    return record.open_content(dek, fetched.response.ciphertext, context).decode("ascii")


def test_genuine_grant_unwraps(worker):
    fetched = worker.fetch("openai")

    response = worker.secret.UnwrapShare(fetched.unwrap_request(), timeout=10)

    assert _decrypt(fetched, response.sealed_share_b) == OPENAI_KEY


def test_missing_grant_denied(worker):
    fetched = worker.fetch("openai")
    request = fetched.unwrap_request()
    request.ClearField("grant")

    assert "grant is missing" in worker.denial(request)


def test_empty_grant_denied(worker):
    fetched = worker.fetch("openai")

    message = worker.denial(fetched.unwrap_request(grant=common_pb2.UseGrant()))

    assert "grant is missing" in message


def test_expired_grant_denied(worker, signing_key):
    fetched = worker.fetch("openai")
    # Issued two minutes ago with the maximum lifetime of 60 s.
    grant = _self_issued(signing_key, fetched, now_ms=int(time.time() * 1000) - 120_000)

    message = worker.denial(fetched.unwrap_request(grant=grant))

    assert "expired" in message


def test_future_grant_denied(worker, signing_key):
    """A grant that expires further ahead than any the keystore issues is rejected too."""
    fetched = worker.fetch("openai")
    grant = _self_issued(signing_key, fetched, now_ms=int(time.time() * 1000) + 600_000)

    message = worker.denial(fetched.unwrap_request(grant=grant))

    assert "lifetime exceeds" in message


def test_other_workers_grant_denied(worker, other_worker):
    fetched = other_worker.fetch("openai")
    request = fetched.unwrap_request()

    message = worker.denial(request)

    assert "another identity" in message
    # The grant itself is genuine: its own worker may use it.
    response = other_worker.secret.UnwrapShare(request, timeout=10)
    assert _decrypt(fetched, response.sealed_share_b) == OPENAI_KEY


def test_grant_for_other_record_denied(worker):
    openai = worker.fetch("openai")
    anthropic = worker.fetch("anthropic", request_id=openai.request_id)
    # Same request id and reply key, so only the record differs from the grant.
    request = openai.unwrap_request(grant=anthropic.response.grant, reply_key=anthropic.reply_key)

    message = worker.denial(request)

    assert "another record" in message


def test_grant_for_other_wrap_b_denied(worker):
    openai = worker.fetch("openai")
    anthropic = worker.fetch("anthropic")

    message = worker.denial(openai.unwrap_request(wrap_b=anthropic.response.wrap_b))

    assert "another wrap_b" in message


def test_grant_for_other_reply_key_denied(worker):
    fetched = worker.fetch("openai")
    stranger = bytes(nacl.public.PrivateKey.generate().public_key)

    message = worker.denial(fetched.unwrap_request(reply_key=stranger))

    assert "another reply_key" in message


def test_grant_for_other_request_id_denied(worker):
    fetched = worker.fetch("openai")

    message = worker.denial(fetched.unwrap_request(request_id=os.urandom(16).hex()))

    assert "another request_id" in message


def test_forged_signature_denied(worker):
    fetched = worker.fetch("openai")
    grant = common_pb2.UseGrant()
    grant.CopyFrom(fetched.response.grant)
    grant.signature = bytes([grant.signature[0] ^ 1]) + grant.signature[1:]

    message = worker.denial(fetched.unwrap_request(grant=grant))

    assert "signature is invalid" in message


def test_altered_grant_field_denied(worker):
    """Extending a genuine grant's expiry breaks its signature."""
    fetched = worker.fetch("openai")
    grant = common_pb2.UseGrant()
    grant.CopyFrom(fetched.response.grant)
    grant.expires_at_ms += 1_000

    message = worker.denial(fetched.unwrap_request(grant=grant))

    assert "signature is invalid" in message


def test_grant_from_foreign_key_denied(worker):
    fetched = worker.fetch("openai")
    grant = _self_issued(nacl.signing.SigningKey.generate(), fetched)

    message = worker.denial(fetched.unwrap_request(grant=grant))

    assert "signature is invalid" in message


def test_replayed_request_id_other_grant_denied(worker, signing_key):
    fetched = worker.fetch("openai")
    first = worker.secret.UnwrapShare(fetched.unwrap_request(), timeout=10)
    assert _decrypt(fetched, first.sealed_share_b) == OPENAI_KEY
    # Valid on its own, but a second grant under the same request id.
    second_grant = _self_issued(signing_key, fetched, lifetime_ms=30_000)
    assert second_grant.signature != fetched.response.grant.signature

    message = worker.denial(fetched.unwrap_request(grant=second_grant))

    assert "request_id was already used with another grant" in message


def test_retry_with_same_grant_allowed(worker):
    fetched = worker.fetch("openai")
    request = fetched.unwrap_request()

    first = worker.secret.UnwrapShare(request, timeout=10)
    second = worker.secret.UnwrapShare(request, timeout=10)

    assert _decrypt(fetched, first.sealed_share_b) == OPENAI_KEY
    assert _decrypt(fetched, second.sealed_share_b) == OPENAI_KEY


def test_keystore_identity_cannot_unwrap(stored, worker, signing_key):
    """Even with a valid grant naming it, the keystore's own identity never receives share_b."""
    root = stored.root
    fetched = worker.fetch("openai")
    grant = _self_issued(signing_key, fetched, worker_identity=spiffe("keystore", "main"))
    channel = raw_channel(
        stored.secret.port, root / "ca/secret-ca.pem", root / "keystore/to-secret.pem", root / "keystore/to-secret.key"
    )

    with channel, pytest.raises(grpc.RpcError) as caught:
        secret_pb2_grpc.SecretServerStub(channel).UnwrapShare(fetched.unwrap_request(grant=grant), timeout=10)

    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "role 'keystore' may not call UnwrapShare" in caught.value.details()
