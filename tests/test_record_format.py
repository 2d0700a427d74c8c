"""Known-answer vectors and negative cases for the record format.

The expected values are computed here independently of splitkey.record:
the context bytes are written out by hand, HKDF follows RFC 5869 with hmac,
and the hex vectors pin the format so an accidental change fails.
"""

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from splitkey import record
from splitkey.context import Context
from splitkey.errors import IntegrityError, InvalidInputError

CONTEXT = Context(deployment="splitkey.test", workspace="ws-0001", provider="openai", record_id="00112233445566778899aabbccddeeff")
KEK = bytes(range(32))
DEK = bytes(range(100, 132))
SHARE_A = bytes(range(200, 232))
NONCE = bytes(range(12))
KEY = b"sk-proj-TESTONLY-aaaa1111"


def _field(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def _hand_context(purpose: str) -> bytes:
    parts = [b"splitkey", b"1", b"splitkey.test", purpose.encode(), b"ws-0001", b"openai", b"00112233445566778899aabbccddeeff"]
    return b"".join(_field(part) for part in parts)


def _rfc5869_hkdf(ikm: bytes, info: bytes) -> bytes:
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_context_encoding_matches_layout():
    assert CONTEXT.encode("share-a") == _hand_context("share-a")


def test_content_matches_independent_aes_gcm():
    padded = KEY + b"\x80" + bytes(256 - len(KEY) - 1)
    expected = NONCE + AESGCM(DEK).encrypt(NONCE, padded, _hand_context("content"))
    assert record.seal_content(DEK, KEY, CONTEXT, nonce=NONCE) == expected


def test_wrap_matches_independent_hkdf():
    wrapping_key = _rfc5869_hkdf(KEK, _hand_context("share-a") + (7).to_bytes(4, "big"))
    expected = (7).to_bytes(4, "big") + NONCE + AESGCM(wrapping_key).encrypt(NONCE, SHARE_A, _hand_context("share-a"))
    assert record.wrap_share(KEK, 7, SHARE_A, CONTEXT, "share-a", nonce=NONCE) == expected


def test_pinned_vectors():
    wrap = record.wrap_share(KEK, 1, SHARE_A, CONTEXT, "share-b", nonce=NONCE)
    content = record.seal_content(DEK, KEY, CONTEXT, nonce=NONCE)
    assert hashlib.sha256(wrap).hexdigest() == PINNED_WRAP_SHA256
    assert hashlib.sha256(content).hexdigest() == PINNED_CONTENT_SHA256
    assert CONTEXT.digest().hex() == PINNED_CONTEXT_DIGEST


PINNED_WRAP_SHA256 = "71f6b4ae89ed3ccd76d749fb3bdc19d1716fbcef024e498abb5cdaebe6ce0dd4"
PINNED_CONTENT_SHA256 = "1475aa04ffc4c7b1a6dcb2fa0e7772852f80d31fa49b15973f083fd97e4caa7b"
PINNED_CONTEXT_DIGEST = "b710c6c882bc7fbf79df72f44e8cd1578bf7a0d650c0bcce71161d713b042843"


def test_split_and_combine_round_trip():
    share_a, share_b = record.split_dek(DEK, share_a=SHARE_A)
    assert share_b == bytes(a ^ b for a, b in zip(DEK, SHARE_A))
    assert record.combine_shares(share_a, share_b) == DEK


def test_shares_alone_differ_from_dek():
    share_a, share_b = record.split_dek(DEK)
    assert share_a != DEK
    assert share_b != DEK
    assert len(share_a) == len(share_b) == 32


def test_full_round_trip():
    ciphertext = record.seal_content(DEK, KEY, CONTEXT)
    assert len(ciphertext) == record.CIPHERTEXT_BYTES
    assert record.open_content(DEK, ciphertext, CONTEXT) == KEY


def test_ciphertext_hides_key_length():
    short = record.seal_content(DEK, b"AIza" + b"x" * 35, CONTEXT)
    long = record.seal_content(DEK, b"sk-" + b"y" * 200, CONTEXT)
    assert len(short) == len(long)


@pytest.mark.parametrize("field", ["workspace", "record_id", "provider", "deployment"])
def test_moved_ciphertext_fails(field):
    ciphertext = record.seal_content(DEK, KEY, CONTEXT)
    moved = {
        "workspace": dict(workspace="ws-0002"),
        "record_id": dict(record_id="ffeeddccbbaa99887766554433221100"),
        "provider": dict(provider="anthropic"),
        "deployment": dict(deployment="other.test"),
    }[field]
    other = Context(**{**CONTEXT.__dict__, **moved})
    with pytest.raises(IntegrityError):
        record.open_content(DEK, ciphertext, other)


def test_wrap_under_other_purpose_fails():
    wrap = record.wrap_share(KEK, 1, SHARE_A, CONTEXT, "share-a")
    with pytest.raises(IntegrityError):
        record.unwrap_share(KEK, wrap, CONTEXT, "share-b")


def test_forged_version_header_fails():
    wrap = record.wrap_share(KEK, 1, SHARE_A, CONTEXT, "share-a")
    forged = (2).to_bytes(4, "big") + wrap[4:]
    with pytest.raises(IntegrityError):
        record.unwrap_share(KEK, forged, CONTEXT, "share-a")


@pytest.mark.parametrize("position", [0, 5, 20, 40, 63])
def test_flipped_wrap_byte_fails(position):
    wrap = bytearray(record.wrap_share(KEK, 1, SHARE_A, CONTEXT, "share-a"))
    wrap[position] ^= 0x01
    with pytest.raises(IntegrityError):
        record.unwrap_share(KEK, bytes(wrap), CONTEXT, "share-a")


@pytest.mark.parametrize("position", [0, 11, 12, 200, 283])
def test_flipped_ciphertext_byte_fails(position):
    ciphertext = bytearray(record.seal_content(DEK, KEY, CONTEXT))
    ciphertext[position] ^= 0x80
    with pytest.raises(IntegrityError):
        record.open_content(DEK, bytes(ciphertext), CONTEXT)


def test_truncated_ciphertext_fails():
    ciphertext = record.seal_content(DEK, KEY, CONTEXT)
    with pytest.raises(IntegrityError):
        record.open_content(DEK, ciphertext[:-1], CONTEXT)


def test_wrong_size_share_rejected():
    with pytest.raises(InvalidInputError):
        record.wrap_share(KEK, 1, SHARE_A[:31], CONTEXT, "share-a")


def test_oversized_key_rejected():
    with pytest.raises(InvalidInputError, match="maximum is 255 bytes"):
        record.seal_content(DEK, b"k" * 256, CONTEXT)


def test_largest_key_round_trips():
    ciphertext = record.seal_content(DEK, b"k" * 255, CONTEXT)
    assert record.open_content(DEK, ciphertext, CONTEXT) == b"k" * 255


@pytest.mark.parametrize(
    "changes",
    [
        dict(workspace="WS-0001"),
        dict(workspace=" ws-0001"),
        dict(workspace=""),
        dict(record_id="00112233445566778899AABBCCDDEEFF"),
        dict(record_id="0011"),
        dict(provider="OpenAI"),
        dict(deployment="Splitkey.test"),
        dict(format_version=2),
    ],
)
def test_non_canonical_context_rejected(changes):
    with pytest.raises(InvalidInputError):
        Context(**{**CONTEXT.__dict__, **changes})
