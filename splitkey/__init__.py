"""Shared core of splitkey: record format, identities, configuration and errors.

The servers (`keystore_server`, `secret_server`) and the `client` package all
build on this package; nothing here opens a network connection.
"""

import logging as _logging

# A library does not configure logging; without a handler, Python would print
# warnings such as retry notices to stderr on its own.
_logging.getLogger("splitkey").addHandler(_logging.NullHandler())
