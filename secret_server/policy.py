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
