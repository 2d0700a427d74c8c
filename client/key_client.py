"""KeyClient: add a provider key, and decrypt one for a single use, by combining both servers.

Add:  normalize and check the key; make a DEK, split it into share_a and
      share_b, encrypt the padded key; WrapShare(share_b) on the secret
      server; PutKey(ciphertext, share_a, wrap_b) on the keystore. The DEK and
      the plaintext never leave this process.
Use:  FetchKey on the keystore with a fresh X25519 reply key; check the
      returned context; UnwrapShare on the secret server with the grant; open
      both sealed shares, XOR them and decrypt. One request id goes to both.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

import nacl.exceptions
import nacl.public

from client.channels import ServerChannel
from client.providers.backoff import call_with_backoff
from client.providers.endpoints import ProviderEndpoints
from client.providers.outcomes import CheckResult
from client.providers.ratelimit import CheckRateLimiter
from client.providers.verify import verify_key
from client.providers.formats import check_key_format, get_provider, parse_model
from client.providers.normalize import normalize_pasted_key
from client.retry import call_with_retry
from splitkey import record
from splitkey.config import ClientConfig, load_client_config
from splitkey.context import PLATFORM_WORKSPACE, Context, encode_fields, validate_workspace
from splitkey.errors import ConfigError, IntegrityError, InvalidInputError, KeyFormatError, KeyVersionError
from splitkey.hardening import disable_core_dumps
from splitkey.secret import SecretKey, constant_time_equal, mask_key
from splitkey.v1 import keystore_pb2, keystore_pb2_grpc, secret_pb2, secret_pb2_grpc

_logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class AddedKey:
    record_id: str
    provider: str
    masked_key: str
    kek_a_version: int
    kek_b_version: int
    replaced_record_id: str


class KeyCheckError(KeyFormatError):
    """A live check found the key unusable; `result` gives the reason, with the key masked."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(f"{result.provider} key {result.key_hint} failed its live check: {result.message}")
        self.result = result


def _new_request_id() -> str:
    return uuid.uuid4().hex


def key_digest(deployment: str, provider: str, key: str) -> bytes:
    """Input of a key's fingerprint; the keystore stores only an HMAC of it under a KEK-A key."""
    return hashlib.sha256(
        encode_fields((b"splitkey-fingerprint", deployment.encode(), provider.encode(), key.encode()))
    ).digest()


RESOLUTIONS = {
    keystore_pb2.RESOLUTION_PLATFORM: "platform",
    keystore_pb2.RESOLUTION_BYOK: "byok",
    keystore_pb2.RESOLUTION_OPENROUTER_FALLBACK: "openrouter-fallback",
}


class KeyClient:
    """The splitkey client library. Thread-safe; share one instance per process."""

    def __init__(self, config: ClientConfig, *, harden: bool = True):
        if harden:
            disable_core_dumps()
        self.config = config
        self._check_limiter = CheckRateLimiter()
        self._keystore = (
            ServerChannel(f"keystore at {config.keystore.address}", config.keystore, keystore_pb2_grpc.KeystoreStub,
                          expiry_warning_days=config.cert_expiry_warning_days)
            if config.keystore else None
        )
        self._secret = (
            ServerChannel(f"secret server at {config.secret.address}", config.secret, secret_pb2_grpc.SecretServerStub,
                          expiry_warning_days=config.cert_expiry_warning_days)
            if config.secret else None
        )

    @classmethod
    def from_config(cls, path: str | os.PathLike, **kwargs) -> "KeyClient":
        return cls(load_client_config(path), **kwargs)

    def __repr__(self) -> str:
        return f"<KeyClient trust_domain={self.config.trust_domain!r}>"

    def close(self) -> None:
        for channel in (self._keystore, self._secret):
            if channel is not None:
                channel.close()

    def __enter__(self) -> "KeyClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _require(self, channel: ServerChannel | None, table: str) -> ServerChannel:
        if channel is None:
            raise ConfigError(f"this client configuration has no [{table}] table; it cannot reach that server")
        return channel

    def _call(self, channel: ServerChannel, method: str, request):
        timeout = self.config.rpc_timeout_s
        return call_with_retry(
            lambda: getattr(channel.stub, method)(request, timeout=timeout),
            server=channel.name,
            policy=self.config.retry,
        )

    # -- add ---------------------------------------------------------------

    def add_key(self, workspace: str, provider: str, api_key: str | SecretKey, *, check: bool = False) -> AddedKey:
        """Normalize, check, split and store a provider key; return its new record's metadata.

        With `check`, the key is first tested live against the provider and
        stored only when valid; otherwise KeyCheckError carries the CheckResult
        (a "could not verify" result is not the key's fault: retry later, or
        add without the check). Replacing a provider's key makes a new record;
        the old one is marked replaced and tombstoned.
        """
        keystore = self._require(self._keystore, "keystore")
        secret = self._require(self._secret, "secret")
        validate_workspace(workspace)
        provider = get_provider(provider).name
        text = api_key.reveal() if isinstance(api_key, SecretKey) else api_key
        key = normalize_pasted_key(text)
        check_key_format(provider, key)
        if check:
            result = verify_key(
                provider, SecretKey(key, provider), self.endpoints(),
                rate_limiter=self._check_limiter, workspace_id=workspace,
            )
            if not result.ok:
                raise KeyCheckError(result)

        context = Context(
            deployment=self.config.trust_domain, workspace=workspace, provider=provider, record_id=os.urandom(16).hex()
        )
        dek = os.urandom(record.DEK_BYTES)
        ciphertext = record.seal_content(dek, key.encode("ascii"), context)
        share_a, share_b = record.split_dek(dek)
        del dek

        # Each RPC carries its own request id; a retried PutKey repeats its id
        # and content exactly, so the keystore applies it once. When the KEK-B
        # version of wrap_b was retired between the two calls, PutKey rejects it
        # with KeyVersionError, and one new WrapShare under the active version
        # (with a new PutKey request id) completes the add.
        for attempt in (1, 2):
            wrapped = self._call(
                secret, "WrapShare",
                secret_pb2.WrapShareRequest(request_id=_new_request_id(), context=context.to_proto(), share_b=share_b),
            )
            try:
                reply = self._call(
                    keystore, "PutKey",
                    keystore_pb2.PutKeyRequest(
                        request_id=_new_request_id(),
                        context=context.to_proto(),
                        ciphertext=ciphertext,
                        share_a=share_a,
                        wrap_b=wrapped.wrap_b,
                        key_hint=mask_key(key),
                        key_digest=key_digest(self.config.trust_domain, provider, key),
                    ),
                )
                break
            except KeyVersionError as error:
                if attempt == 2:
                    raise
                _logger.warning("PutKey rejected record %s, so WrapShare runs once more: %s", context.record_id, error)
        del share_a, share_b
        _logger.info("added %s key %s to workspace %s as record %s", provider, mask_key(key), workspace, reply.record_id)
        return AddedKey(
            record_id=reply.record_id,
            provider=provider,
            masked_key=mask_key(key),
            kek_a_version=reply.kek_a_version,
            kek_b_version=reply.kek_b_version,
            replaced_record_id=reply.replaced_record_id,
        )

    def list_keys(self, workspace: str) -> list[keystore_pb2.KeyInfo]:
        keystore = self._require(self._keystore, "keystore")
        validate_workspace(workspace)
        return list(self._call(keystore, "ListKeys", keystore_pb2.ListKeysRequest(workspace=workspace)).keys)

    def remove_key(self, workspace: str, provider: str) -> str:
        """Remove a workspace's key for a provider; return the removed record id.

        The record is tombstoned on the secret server, so a restored copy of it
        can never be decrypted again.
        """
        keystore = self._require(self._keystore, "keystore")
        validate_workspace(workspace)
        provider = get_provider(provider).name
        request = keystore_pb2.RemoveKeyRequest(request_id=_new_request_id(), workspace=workspace, provider=provider)
        return self._call(keystore, "RemoveKey", request).removed_record_id

    def set_mode(self, workspace: str, mode: str) -> keystore_pb2.WorkspaceInfo:
        """Set a workspace's API mode: "platform" (the platform's keys) or "byok" (its own keys)."""
        keystore = self._require(self._keystore, "keystore")
        validate_workspace(workspace)
        modes = {"platform": keystore_pb2.API_MODE_PLATFORM, "byok": keystore_pb2.API_MODE_BYOK}
        if mode not in modes:
            raise InvalidInputError(f"mode must be 'platform' or 'byok', got {mode!r}")
        request = keystore_pb2.SetModeRequest(request_id=_new_request_id(), workspace=workspace, mode=modes[mode])
        return self._call(keystore, "SetMode", request)

    def get_workspace(self, workspace: str) -> keystore_pb2.WorkspaceInfo:
        keystore = self._require(self._keystore, "keystore")
        validate_workspace(workspace)
        return self._call(keystore, "GetWorkspace", keystore_pb2.GetWorkspaceRequest(workspace=workspace))

    # -- use ---------------------------------------------------------------

    @contextlib.contextmanager
    def use_key(self, workspace: str, model: str) -> Iterator[SecretKey]:
        """Decrypt the key for one provider call and yield it; it is dropped on exit.

        `model` is a provider ("openai") or a model name ("openai/gpt-4o").
        """
        key = self.decrypt(workspace, model)
        try:
            yield key
        finally:
            del key

    def call(self, workspace: str, model: str, fn: Callable[[SecretKey], T]) -> T:
        """Make one logical provider call: decrypt the key once and pass it to `fn`.

        `fn(key)` calls the provider (using `key.provider` to pick the API; it is
        "openrouter" after an OpenRouter fallback) and returns its result, or raises
        ProviderHTTPError / ProviderConnectionError. Rate limits (429 that is not an
        exhausted quota) and transient errors are retried with exponential backoff,
        full jitter and Retry-After, within [provider_retry]; 400, 401, 402 and 403
        are not. When retries run out, ProviderCallError names the provider, the
        attempts, the last status and what would help. The key is dropped on return.
        """
        policy = self.config.provider_retry
        with self.use_key(workspace, model) as key:
            return call_with_backoff(
                lambda: fn(key),
                provider=key.provider,
                max_attempts=policy.max_attempts,
                max_total_s=policy.max_total_s,
                initial_s=policy.initial_s,
                max_s=policy.max_s,
            )

    def check_key(self, workspace: str, model: str) -> CheckResult:
        """Decrypt a stored key and check it live against its provider (role worker).

        Checks are rate-limited per workspace within this client; the limiter
        raises ResourceExhaustedError when a workspace checks too often.
        """
        with self.use_key(workspace, model) as key:
            return verify_key(
                key.provider, key, self.endpoints(), rate_limiter=self._check_limiter, workspace_id=workspace
            )

    def endpoints(self) -> ProviderEndpoints:
        """Provider base URLs from this client's configuration, never from stored data."""
        return ProviderEndpoints(**self.config.providers)

    def decrypt(self, workspace: str, model: str) -> SecretKey:
        """Fetch, unwrap and decrypt one key. Prefer `use_key`, which bounds its lifetime."""
        keystore = self._require(self._keystore, "keystore")
        secret = self._require(self._secret, "secret")
        validate_workspace(workspace)
        provider, model_name = parse_model(model)
        # The server expects the provider in lower case; the model name keeps its case.
        normalized_model = f"{provider}/{model_name}" if model_name else provider
        request_id = _new_request_id()
        reply_private = nacl.public.PrivateKey.generate()
        reply_public = bytes(reply_private.public_key)

        fetched = self._call(
            keystore, "FetchKey",
            keystore_pb2.FetchKeyRequest(
                request_id=request_id, workspace=workspace, model=normalized_model, reply_key=reply_public
            ),
        )
        context = self._check_context(fetched, workspace=workspace, provider=provider, request_id=request_id,
                                      reply_key=reply_public)
        unwrapped = self._call(
            secret, "UnwrapShare",
            secret_pb2.UnwrapShareRequest(
                request_id=request_id,
                context=fetched.context,
                wrap_b=fetched.wrap_b,
                grant=fetched.grant,
                reply_key=reply_public,
            ),
        )
        opener = nacl.public.SealedBox(reply_private)
        try:
            share_a = opener.decrypt(fetched.sealed_share_a)
            share_b = opener.decrypt(unwrapped.sealed_share_b)
        except nacl.exceptions.CryptoError:
            raise IntegrityError() from None
        dek = record.combine_shares(share_a, share_b)
        del share_a, share_b
        plaintext = record.open_content(dek, fetched.ciphertext, context)
        del dek
        try:
            text = plaintext.decode("ascii")
        except UnicodeDecodeError:
            raise IntegrityError() from None
        return SecretKey(
            text, provider=context.provider, record_id=context.record_id, resolution=RESOLUTIONS[fetched.resolution]
        )

    def _check_context(self, fetched, *, workspace: str, provider: str, request_id: str, reply_key: bytes) -> Context:
        """Refuse a keystore reply for another deployment, workspace, provider, request or reply key.

        The record must be the one the resolution names: the platform key for
        the provider, the workspace's key for the provider, or the workspace's
        OpenRouter key. A keystore that returns another customer's record
        is caught here.
        """
        try:
            context = Context.from_proto(fetched.context)
        except Exception:  # noqa: BLE001 - any malformed context is an integrity failure
            raise IntegrityError() from None
        expected = {
            keystore_pb2.RESOLUTION_PLATFORM: (PLATFORM_WORKSPACE, provider),
            keystore_pb2.RESOLUTION_BYOK: (workspace, provider),
            keystore_pb2.RESOLUTION_OPENROUTER_FALLBACK: (workspace, "openrouter"),
        }.get(fetched.resolution)
        checks = (
            expected is not None,
            (context.workspace, context.provider) == expected,
            context.deployment == self.config.trust_domain,
            constant_time_equal(fetched.grant.request_id, request_id),
            constant_time_equal(fetched.grant.reply_key, reply_key),
            constant_time_equal(fetched.grant.context_hash, context.digest()),
            fetched.grant.requested_workspace == workspace,
        )
        if not all(checks):
            _logger.error(
                "keystore returned, for request %s of workspace %s/%s, record %s of workspace %s/%s; rejecting it",
                request_id, workspace, provider, context.record_id, context.workspace, context.provider,
            )
            raise IntegrityError()
        return context
