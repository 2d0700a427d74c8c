"""SetAccess and ListAccess: one implementation serves both servers, and both store the same rule."""

from __future__ import annotations

import pytest

from keystore_server.admin_servicer import KeystoreAdminServicer
from secret_server.admin_servicer import SecretAdminServicer
from splitkey.access_rpc import AccessRuleHandlers
from tests import rotation_support as support
from tests.servers import Deployment


@pytest.mark.parametrize("method", ["SetAccess", "ListAccess"])
def test_both_servers_share_handler(method):
    shared = getattr(AccessRuleHandlers, method)
    assert getattr(KeystoreAdminServicer, method) is shared
    assert getattr(SecretAdminServicer, method) is shared


def test_both_servers_return_same_rule(tmp_path):
    deployment = Deployment.create(tmp_path / "dev").start()
    try:
        with support.admin(deployment) as admin:
            result = admin.set_access("workspace", "ws-0007", disabled=True, reason="customer offboarded")
            listed = admin.list_access()
    finally:
        deployment.stop()

    assert result.errors == {}
    for rule in (result.keystore, result.secret, *listed["keystore"], *listed["secret"]):
        assert (rule.subject_kind, rule.subject, rule.disabled, rule.reason) == (
            "workspace", "ws-0007", True, "customer offboarded")
        assert rule.actor == "spiffe://splitkey.test/security/dev"
        assert rule.updated_at_ms > 0
    assert len(listed["keystore"]) == 1
    assert len(listed["secret"]) == 1
