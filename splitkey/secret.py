"""Holders for secret values: redacted repr, no pickling, constant-time equality.

Python cannot reliably erase memory: strings and bytes are immutable and the
allocator may keep copies. These holders keep secrets out of logs, tracebacks,
pickles and accidental `print` calls; they do not defend against an attacker
who can read the process memory. Core dumps are disabled separately, see
`splitkey.hardening`.
"""

from __future__ import annotations

import hmac


def constant_time_equal(left: bytes | str, right: bytes | str) -> bool:
    """Compare two secrets in time independent of where they differ."""
    if isinstance(left, str):
        left = left.encode()
    if isinstance(right, str):
        right = right.encode()
    return hmac.compare_digest(left, right)


def mask_key(api_key: str) -> str:
    """Return the display form of an API key: first four and last four characters.

    Keys shorter than 12 characters show only their last two, so the mask never
    reveals more than a third of the key.
    """
    if len(api_key) >= 12:
        return f"{api_key[:4]}…{api_key[-4:]}"
    if len(api_key) >= 6:
        return f"…{api_key[-2:]}"
    return "…"


class _NoPickle:
    __slots__ = ()

    def __reduce__(self):
        raise TypeError(f"{type(self).__name__} contains a secret and cannot be pickled")

    def __reduce_ex__(self, protocol):
        return self.__reduce__()

    def __copy__(self):
        raise TypeError(f"{type(self).__name__} contains a secret and cannot be copied")

    def __deepcopy__(self, memo):
        return self.__copy__()


class SecretBytes(_NoPickle):
    """Secret binary material (a DEK, a share, a KEK). `reveal()` is the only way out."""

    __slots__ = ("_value", "_label")

    def __init__(self, value: bytes, label: str = "secret") -> None:
        self._value = bytes(value)
        self._label = label

    def reveal(self) -> bytes:
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"<SecretBytes {self._label} len={len(self._value)} redacted>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretBytes):
            return NotImplemented
        return constant_time_equal(self._value, other._value)

    def __hash__(self) -> int:
        raise TypeError("SecretBytes is unhashable so it cannot end up as a dictionary key")

    def __format__(self, spec: str) -> str:
        return repr(self)


class SecretKey(_NoPickle):
    """A plaintext provider API key. `reveal()` returns it; everything else shows the mask."""

    __slots__ = ("_value", "provider", "record_id", "resolution")

    def __init__(self, value: str, provider: str = "", record_id: str = "", resolution: str = "") -> None:
        self._value = value
        self.provider = provider
        self.record_id = record_id
        # How the keystore chose the key: "platform", "byok" or "openrouter-fallback".
        self.resolution = resolution

    def reveal(self) -> str:
        return self._value

    @property
    def masked(self) -> str:
        return mask_key(self._value)

    def __repr__(self) -> str:
        provider = f" {self.provider}" if self.provider else ""
        return f"<SecretKey{provider} {self.masked}>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretKey):
            return NotImplemented
        return constant_time_equal(self._value, other._value)

    def __hash__(self) -> int:
        raise TypeError("SecretKey is unhashable so it cannot end up as a dictionary key")
