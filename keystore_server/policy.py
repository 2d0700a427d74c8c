"""Which roles may call which keystore RPC. A method missing here is denied to every role."""

_SERVICE = "/splitkey.v1.Keystore/"

ALLOW = {
    _SERVICE + "PutKey": frozenset({"app", "security"}),
    _SERVICE + "FetchKey": frozenset({"worker"}),
    _SERVICE + "ListKeys": frozenset({"app", "security", "auditor"}),
    _SERVICE + "RemoveKey": frozenset({"app", "security"}),
    _SERVICE + "SetMode": frozenset({"app"}),
    _SERVICE + "GetWorkspace": frozenset({"app", "security", "auditor"}),
}

_ADMIN = "/splitkey.v1.KeystoreAdmin/"
_SECURITY = frozenset({"security"})
_SECURITY_READ = frozenset({"security", "auditor"})
ALLOW.update({
    _ADMIN + "AddKekVersion": _SECURITY,
    _ADMIN + "ActivateKekVersion": _SECURITY,
    _ADMIN + "KekVersions": _SECURITY_READ,
    _ADMIN + "StartRewrap": _SECURITY,
    _ADMIN + "RewrapStatus": _SECURITY_READ,
    _ADMIN + "RetireKekVersion": _SECURITY,
    _ADMIN + "SetAccess": _SECURITY,
    _ADMIN + "ListAccess": _SECURITY_READ,
    _ADMIN + "Verify": _SECURITY_READ,
})

# The keystore serves its own audit log to auditors. WitnessHead is absent: the
# keystore fetches the secret server's head itself and accepts none pushed to it.
_AUDIT = "/splitkey.v1.AuditLog/"
ALLOW.update({
    _AUDIT + "StreamEntries": frozenset({"auditor"}),
    _AUDIT + "GetCheckpoints": frozenset({"auditor"}),
    _AUDIT + "LatestHead": frozenset({"auditor"}),
    # Prune deletes history, so it goes to security alone: the auditors who check the log cannot delete it.
    _AUDIT + "Prune": frozenset({"security"}),
})
