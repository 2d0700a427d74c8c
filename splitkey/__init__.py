"""Shared core of splitkey: record format, identities, configuration and errors.

The servers (`keystore_server`, `secret_server`) and the `client` package all
build on this package; nothing here opens a network connection.
"""
