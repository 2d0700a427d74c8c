"""The secret server's deny rules: disabled records, workspaces and worker identities.

Stored in the secret server's database under an HMAC derived from KEK-B (see
`splitkey.access_rules`) and checked by UnwrapShare on every request, so a
rule takes effect on the next request even if the keystore's copy is lost.
"""

from __future__ import annotations

from splitkey.access_rules import AccessRules


class SecretDenyRules(AccessRules):
    def __init__(self, db, keyring, deployment: str):
        super().__init__(db, keyring, deployment, "secret")
