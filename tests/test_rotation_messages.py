"""What each server receives during adds, decrypts and both rotations: never the other side's secret.

Both servers run with a recording interceptor (tests/recording) that writes
every request they receive. The test unwraps every share that existed before
and after the rotations with its own copies of both KEKs. No keystore request
may contain a share_b, and no secret-server request a share_a, a DEK or a
ciphertext.
"""

from __future__ import annotations

import base64
import os

import pytest

from splitkey.v1 import admin_pb2
from tests import rotation_support as support
from tests.servers import Deployment

KEYS = 12


def _recorded(path) -> list[tuple[str, bytes]]:
    entries = []
    for line in path.read_text().splitlines():
        method, payload = line.split(" ", 1)
        entries.append((method, base64.b64decode(payload)))
    return entries


def _secrets(deployment, kek_a, kek_b) -> dict[str, set[bytes]]:
    found: dict[str, set[bytes]] = {"share_a": set(), "share_b": set(), "dek": set(), "ciphertext": set()}
    for row in support.rows(deployment).values():
        share_a, share_b = support.shares(row, kek_a, kek_b)
        found["share_a"].add(share_a)
        found["share_b"].add(share_b)
        found["dek"].add(bytes(x ^ y for x, y in zip(share_a, share_b)))
        found["ciphertext"].add(bytes(row["ciphertext"]))
    return found


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("messages") / "dev"
    deployment = Deployment.create(root)
    logs = {"keystore": root.parent / "keystore.requests", "secret": root.parent / "secret.requests"}
    pythonpath = os.pathsep.join(filter(None, [str(support.RECORDING_PATH), os.environ.get("PYTHONPATH")]))
    deployment.secret.start(env={"SPLITKEY_TEST_RECORD": str(logs["secret"]), "PYTHONPATH": pythonpath})
    deployment.keystore.start(env={"SPLITKEY_TEST_RECORD": str(logs["keystore"]), "PYTHONPATH": pythonpath})
    try:
        keys = support.add_keys(deployment, KEYS)
        kek_a, kek_b = support.keyrings(deployment)
        seen = _secrets(deployment, kek_a, kek_b)
        with support.admin(deployment) as admin, deployment.client("worker") as worker:
            for name in keys:
                worker.decrypt(name, "openai")
            for kind in ("kek-b", "kek-a"):
                admin.rotate(kind)
                assert support.wait_for_job(admin, kind).state == "done"
            for name, expected in keys.items():
                assert worker.decrypt(name, "openai").reveal() == expected
        kek_a, kek_b = support.keyrings(deployment)
        for name, values in _secrets(deployment, kek_a, kek_b).items():
            seen[name] |= values
    finally:
        deployment.stop()
    return seen, {server: _recorded(path) for server, path in logs.items()}


def test_rewrap_request_fields():
    item_fields = {field.name for field in admin_pb2.RewrapItem.DESCRIPTOR.fields}
    request_fields = {field.name for field in admin_pb2.RewrapSharesRequest.DESCRIPTOR.fields}
    assert item_fields == {"context", "wrap_b", "r"}
    assert request_fields == {"request_id", "items"}


def test_secret_server_received_rewrap_calls(recorded):
    _seen, requests = recorded
    methods = {method for method, _ in requests["secret"]}
    assert "/splitkey.v1.SecretAdmin/RewrapShares" in methods
    assert "/splitkey.v1.SecretServer/UnwrapShare" in methods


def test_keystore_never_receives_share_b(recorded):
    seen, requests = recorded
    assert len(seen["share_b"]) >= 2 * KEYS
    for method, payload in requests["keystore"]:
        for share_b in seen["share_b"]:
            assert share_b not in payload, f"{method} carried a share_b"


def test_secret_server_never_receives_share_a(recorded):
    seen, requests = recorded
    assert len(seen["share_a"]) >= 2 * KEYS
    for method, payload in requests["secret"]:
        for share_a in seen["share_a"]:
            assert share_a not in payload, f"{method} carried a share_a"


def test_secret_server_never_receives_dek_or_ciphertext(recorded):
    seen, requests = recorded
    for method, payload in requests["secret"]:
        for dek in seen["dek"]:
            assert dek not in payload, f"{method} carried a DEK"
        for ciphertext in seen["ciphertext"]:
            assert ciphertext not in payload, f"{method} carried a ciphertext"


def test_rewrap_items_hold_fresh_r(recorded):
    seen, requests = recorded
    rs = []
    for method, payload in requests["secret"]:
        if method.endswith("/RewrapShares"):
            rs.extend(item.r for item in admin_pb2.RewrapSharesRequest.FromString(payload).items)
    assert len(rs) == KEYS
    assert len(set(rs)) == KEYS
    assert all(len(r) == 32 for r in rs)
