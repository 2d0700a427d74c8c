"""The splitkey client library: what workers, the settings backend and operators import.

    from client import KeyClient

    with KeyClient.from_config("client-worker.toml") as keys:
        with keys.use_key("ws-0001", "openai/gpt-4o") as api_key:
            call_provider(api_key.reveal())

Errors are subclasses of `splitkey.errors.SplitkeyError`.
"""

from client.key_client import AddedKey, KeyClient

__all__ = ["AddedKey", "KeyClient"]

import logging as _logging

# A library does not configure logging; without a handler, Python would print
# warnings such as retry notices to stderr on its own.
_logging.getLogger("client").addHandler(_logging.NullHandler())
