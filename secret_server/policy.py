"""Which roles may call which secret-server RPC. A method missing here is denied to every role.

The keystore identity is deliberately absent from UnwrapShare: the host that
holds share_a must never be able to obtain share_b.
"""

_SERVICE = "/splitkey.v1.SecretServer/"

ALLOW = {
    _SERVICE + "WrapShare": frozenset({"app", "security"}),
    _SERVICE + "UnwrapShare": frozenset({"worker"}),
    _SERVICE + "Tombstone": frozenset({"keystore"}),
}

# RewrapShares is for the keystore alone, because it returns only wrapped blobs.
# RetireKekVersion takes approvals from security identities and the usage
# confirmation from the keystore (the only server that sees which rows use a
# version). The handler retires only with the confirmation and two approvals.
_ADMIN = "/splitkey.v1.SecretAdmin/"
ALLOW.update({
    _ADMIN + "RewrapShares": frozenset({"keystore"}),
    _ADMIN + "AddKekVersion": frozenset({"security"}),
    _ADMIN + "ActivateKekVersion": frozenset({"security"}),
    _ADMIN + "KekVersions": frozenset({"security", "keystore", "auditor"}),
    _ADMIN + "RetireKekVersion": frozenset({"keystore", "security"}),
    _ADMIN + "SetAccess": frozenset({"security"}),
    _ADMIN + "ListAccess": frozenset({"security", "auditor"}),
})

# The keystore fetches this log's latest head and pushes its own with
# WitnessHead, so each log contains signed heads of the other.
_AUDIT = "/splitkey.v1.AuditLog/"
ALLOW.update({
    _AUDIT + "StreamEntries": frozenset({"auditor"}),
    _AUDIT + "GetCheckpoints": frozenset({"auditor"}),
    _AUDIT + "LatestHead": frozenset({"auditor", "keystore"}),
    _AUDIT + "WitnessHead": frozenset({"keystore"}),
    # Prune deletes history, so it goes to security alone: the auditors who check the log cannot delete it.
    _AUDIT + "Prune": frozenset({"security"}),
})
