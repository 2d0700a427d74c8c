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
