"""Removal of API keys from text that came back from a provider or a proxy.

Providers usually mask a rejected key in their error messages, but a proxy, a
misconfigured gateway or a future API version may echo it. Every response
excerpt that splitkey keeps in an exception or a log passes through here.
"""

from __future__ import annotations

import re

# Any run of this many characters copied from the key counts as a leak.
WINDOW = 8
REDACTED = "[redacted]"

# Shapes of provider keys, so that keys other than the one sent are masked too.
_KEY_SHAPES = re.compile(r"(?:sk-[A-Za-z0-9_\-]{8,}|AIza[A-Za-z0-9_\-]{8,})")


def redact(text: str, secret: str | None = None) -> str:
    """Return `text` with the secret, any 8-character piece of it and key-shaped tokens replaced."""
    if secret and len(secret) >= WINDOW:
        pieces = {secret[i : i + WINDOW] for i in range(len(secret) - WINDOW + 1)}
        covered = bytearray(len(text))
        for i in range(len(text) - WINDOW + 1):
            if text[i : i + WINDOW] in pieces:
                covered[i : i + WINDOW] = b"\x01" * WINDOW
        if any(covered):
            parts = []
            i = 0
            while i < len(text):
                if covered[i]:
                    while i < len(text) and covered[i]:
                        i += 1
                    parts.append(REDACTED)
                else:
                    parts.append(text[i])
                    i += 1
            text = "".join(parts)
    elif secret:
        text = text.replace(secret, REDACTED)
    return _KEY_SHAPES.sub(REDACTED, text)


def redact_json(value: object, secret: str | None = None) -> object:
    """Return a copy of parsed JSON with every string passed through `redact`."""
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, list):
        return [redact_json(item, secret) for item in value]
    if isinstance(value, dict):
        return {redact(str(k), secret): redact_json(v, secret) for k, v in value.items()}
    return value
