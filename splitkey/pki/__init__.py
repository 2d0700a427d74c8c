"""Certificates, private files and the development deployment.

`certs` issues EC P-256 certificates, `deployment` lays out a complete
development deployment (both CAs, both KEKs, server and client configs), and
`files` writes private files atomically with owner-only permissions.
"""
