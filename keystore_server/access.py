"""The keystore's revocation state: disabled records, workspaces and worker identities.

The rules and their head row live in the keystore database, authenticated by
an HMAC under a key derived from KEK-A (see `splitkey.access_rules`). FetchKey
checks them on every request, so a rule takes effect on the next request.
"""

from __future__ import annotations

from splitkey.access_rules import AccessRules


class KeystoreAccess(AccessRules):
    def __init__(self, db, keyring, deployment: str):
        super().__init__(db, keyring, deployment, "keystore")
