"""Per-RPC role checks and identity parsing on the real servers.

Every method of every service on both servers is called with a certificate
of every role.
A role outside the method's allow-list gets PERMISSION_DENIED from the
guard before the handler runs. Certificates whose SAN does not name exactly
one identity in the deployment's trust domain are denied on every method.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from keystore_server.policy import ALLOW as KEYSTORE_POLICY
from secret_server.policy import ALLOW as SECRET_POLICY
from splitkey.identity import ROLES
from splitkey.pki.certs import issue_leaf
from splitkey.v1 import admin_pb2, audit_pb2, keystore_pb2, secret_pb2
from tests.pki_helpers import deployment_ca, raw_channel, rpc_failure, rpc_status, spiffe, wait_for_log, write_pair

# Who may call what, as the design states it. The tests compare the running
# servers against this table, not against their own policy modules. A row is
# the set of allowed roles, or, for a method whose roles differ between the
# servers that serve it, a dict from server to that set.
EXPECTED_ROLES: dict[str, set[str] | dict[str, set[str]]] = {
    "/splitkey.v1.Keystore/PutKey": {"app", "security"},
    "/splitkey.v1.Keystore/FetchKey": {"worker"},
    "/splitkey.v1.Keystore/ListKeys": {"app", "security", "auditor"},
    "/splitkey.v1.Keystore/RemoveKey": {"app", "security"},
    "/splitkey.v1.Keystore/SetMode": {"app"},
    "/splitkey.v1.Keystore/GetWorkspace": {"app", "security", "auditor"},
    "/splitkey.v1.SecretServer/WrapShare": {"app", "security"},
    "/splitkey.v1.SecretServer/UnwrapShare": {"worker"},
    "/splitkey.v1.SecretServer/Tombstone": {"keystore"},
    "/splitkey.v1.KeystoreAdmin/AddKekVersion": {"security"},
    "/splitkey.v1.KeystoreAdmin/ActivateKekVersion": {"security"},
    "/splitkey.v1.KeystoreAdmin/KekVersions": {"security", "auditor"},
    "/splitkey.v1.KeystoreAdmin/StartRewrap": {"security"},
    "/splitkey.v1.KeystoreAdmin/RewrapStatus": {"security", "auditor"},
    "/splitkey.v1.KeystoreAdmin/RetireKekVersion": {"security"},
    "/splitkey.v1.KeystoreAdmin/SetAccess": {"security"},
    "/splitkey.v1.KeystoreAdmin/ListAccess": {"security", "auditor"},
    "/splitkey.v1.KeystoreAdmin/Verify": {"security", "auditor"},
    "/splitkey.v1.SecretAdmin/RewrapShares": {"keystore"},
    "/splitkey.v1.SecretAdmin/AddKekVersion": {"security"},
    "/splitkey.v1.SecretAdmin/ActivateKekVersion": {"security"},
    "/splitkey.v1.SecretAdmin/KekVersions": {"security", "keystore", "auditor"},
    # Security identities send their approvals; the keystore confirms no row uses the version.
    "/splitkey.v1.SecretAdmin/RetireKekVersion": {"keystore", "security"},
    "/splitkey.v1.SecretAdmin/SetAccess": {"security"},
    "/splitkey.v1.SecretAdmin/ListAccess": {"security", "auditor"},
    "/splitkey.v1.AuditLog/StreamEntries": {"auditor"},
    "/splitkey.v1.AuditLog/GetCheckpoints": {"auditor"},
    # The keystore fetches the secret server's head and pushes its own, so only the secret server lets it call these.
    "/splitkey.v1.AuditLog/LatestHead": {"keystore": {"auditor"}, "secret": {"auditor", "keystore"}},
    "/splitkey.v1.AuditLog/WitnessHead": {"keystore": set(), "secret": {"keystore"}},
    "/splitkey.v1.AuditLog/Prune": {"security"},
}

# (server, service) for every gRPC service a server hosts.
SERVICES = (
    ("keystore", keystore_pb2.DESCRIPTOR.services_by_name["Keystore"]),
    ("keystore", admin_pb2.DESCRIPTOR.services_by_name["KeystoreAdmin"]),
    ("secret", secret_pb2.DESCRIPTOR.services_by_name["SecretServer"]),
    ("secret", admin_pb2.DESCRIPTOR.services_by_name["SecretAdmin"]),
    ("keystore", audit_pb2.DESCRIPTOR.services_by_name["AuditLog"]),
    ("secret", audit_pb2.DESCRIPTOR.services_by_name["AuditLog"]),
)
POLICIES = {"keystore": KEYSTORE_POLICY, "secret": SECRET_POLICY}


def _methods() -> list[tuple[str, str, bool]]:
    """Return (server, method path, server-streaming) for every method of every service."""
    methods = []
    for server, service in SERVICES:
        for method in service.methods:
            methods.append((server, f"/{service.full_name}/{method.name}", method.server_streaming))
    return methods


def _method_ids() -> list[str]:
    """Return a test id per method: its path, prefixed with the server when both servers serve it."""
    paths = [method for _server, method, _streaming in _methods()]
    return [method if paths.count(method) == 1 else f"{server}:{method}" for server, method, _streaming in _methods()]


def _allowed_roles(server: str, method: str) -> set[str]:
    """Return the roles that may call `method` on `server`.

    A method missing from the design table follows its server's policy.
    """
    if method not in EXPECTED_ROLES:
        return set(POLICIES[server].get(method, frozenset()))
    row = EXPECTED_ROLES[method]
    return row[server] if isinstance(row, dict) else row


def _skip_if_not_served(code: grpc.StatusCode, method: str) -> None:
    # UNIMPLEMENTED comes from grpc itself when no servicer is registered, so no handler and no data are involved.
    if code == grpc.StatusCode.UNIMPLEMENTED:
        pytest.skip(f"{method} is not served yet")


@pytest.fixture(scope="module")
def role_certificates(deployment, tmp_path_factory) -> dict[tuple[str, str], tuple[Path, Path]]:
    """Map (server, role) to a (cert, key) pair of spiffe://splitkey.test/<role>/... for that server."""
    root = deployment.root
    pairs = {}
    for role in ("app", "worker", "security", "auditor"):
        for server in ("keystore", "secret"):
            pairs[(server, role)] = (root / f"clients/{role}/{server}.pem", root / f"clients/{role}/{server}.key")
    pairs[("secret", "keystore")] = (root / "keystore/to-secret.pem", root / "keystore/to-secret.key")
    # The deployment has no keystore identity for the keystore server itself; mint one from its CA.
    leaf = issue_leaf(deployment_ca(root, "keystore"), uris=[spiffe("keystore", "main")])
    pairs[("keystore", "keystore")] = write_pair(tmp_path_factory.mktemp("keystore-identity"), "keystore", leaf)
    return pairs


def _channel(deployment, server: str, cert, key) -> grpc.Channel:
    return raw_channel(getattr(deployment, server).port, deployment.root / f"ca/{server}-ca.pem", cert, key)


def test_every_method_in_table():
    """A new RPC must get an explicit row in the design table, so this test notices when one is added."""
    served = {method for _server, method, _streaming in _methods()}
    missing = sorted(served - set(EXPECTED_ROLES))
    assert missing == [], "add the allowed roles of these RPCs to EXPECTED_ROLES"


def test_per_server_rows_name_each_server():
    servers_of: dict[str, set[str]] = {}
    for server, method, _streaming in _methods():
        servers_of.setdefault(method, set()).add(server)
    for method, row in EXPECTED_ROLES.items():
        if isinstance(row, dict):
            assert set(row) == servers_of.get(method), method


def test_policy_modules_match_table():
    for server, policy in POLICIES.items():
        for method, roles in policy.items():
            assert set(roles) == _allowed_roles(server, method), method


def test_keystore_role_never_unwraps():
    assert "keystore" not in SECRET_POLICY.get("/splitkey.v1.SecretServer/UnwrapShare", frozenset())
    assert "keystore" not in EXPECTED_ROLES["/splitkey.v1.SecretServer/UnwrapShare"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("server", "method", "streaming"), _methods(), ids=_method_ids())
def test_role_allow_list(deployment, role_certificates, server, method, streaming, role):
    name = method.rsplit("/", 1)[-1]
    with _channel(deployment, server, *role_certificates[(server, role)]) as channel:
        code, details = rpc_status(channel, method, streaming=streaming)
    _skip_if_not_served(code, method)

    if role in _allowed_roles(server, method):
        # The empty request passes the guard. The handler then rejects it as invalid or serves it.
        assert f"may not call {name}" not in details
        assert code != grpc.StatusCode.PERMISSION_DENIED, details
        return
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert f"role '{role}' may not call {name}" in details


def test_denial_is_logged(deployment, role_certificates):
    log_start = len(deployment.secret.stderr())
    with _channel(deployment, "secret", *role_certificates[("secret", "auditor")]) as channel:
        code, _details = rpc_failure(channel, "/splitkey.v1.SecretServer/WrapShare")

    assert code == grpc.StatusCode.PERMISSION_DENIED
    log = wait_for_log(deployment.secret.stderr, "denied /splitkey.v1.SecretServer/WrapShare", start=log_start)
    assert spiffe("auditor") in log


# Certificates from the right CA whose identity is unusable: (SAN URIs, expected reason).
BAD_IDENTITIES = {
    "foreign-trust-domain": (["spiffe://other.test/app/dev"], "not in trust domain splitkey.test"),
    "trust-domain-suffix": (["spiffe://splitkey.test.evil.example/app/dev"], "not in trust domain splitkey.test"),
    "two-uris": ([spiffe("app"), spiffe("app", "second")], "exactly one SAN URI, found 2"),
    "dns-san-only": ([], "exactly one SAN URI, found 0"),
    "no-san": (None, "no subjectAltName"),
    "unknown-role": ([spiffe("admin")], "known role"),
    "extra-segment": (["spiffe://splitkey.test/app/dev/extra"], "known role"),
    "upper-case-name": ([spiffe("app", "Dev")], "known role"),
    "no-name": (["spiffe://splitkey.test/app"], "known role"),
}


def _bad_identity_leaf(root: Path, server: str, uris):
    ca = deployment_ca(root, server)
    if uris is None:
        return issue_leaf(ca, client_auth=True, server_auth=False)
    if not uris:
        return issue_leaf(ca, dns=["client.splitkey.test"], client_auth=True, server_auth=False)
    return issue_leaf(ca, uris=uris)


@pytest.mark.parametrize("case", list(BAD_IDENTITIES))
@pytest.mark.parametrize(("server", "method", "streaming"), _methods(), ids=_method_ids())
def test_bad_identity_denied(deployment, server, method, streaming, case):
    uris, reason = BAD_IDENTITIES[case]
    leaf = _bad_identity_leaf(deployment.root, server, uris)

    with _channel(deployment, server, leaf.certificate_chain_pem(), leaf.private_key_pem()) as channel:
        code, details = rpc_failure(channel, method, streaming=streaming)
    _skip_if_not_served(code, method)

    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "client certificate rejected" in details
    assert reason in details
