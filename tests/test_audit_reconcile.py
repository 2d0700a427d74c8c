"""Reconciliation of real keystore and secret-server logs."""

from __future__ import annotations

import nacl.signing
import pytest

from splitkey.audit import reconcile
from splitkey.audit.reconcile import role_of
from tests.test_audit_support import APP, WORKER, build_two_day_logs, open_log, use_record


@pytest.fixture
def logs(tmp_path):
    return build_two_day_logs(tmp_path)


def test_role_of_parses_spiffe_id():
    assert role_of(WORKER) == "worker"
    assert role_of("spiffe://example.test/worker") is None
    assert role_of("https://example.test/worker/x") is None


def test_reconcile_flags_missing_counterparts(logs):
    report = reconcile(logs["keystore"], logs["secret"], burst_limit=10, burst_window_s=60)

    assert [f.request_id for f in report.by_kind("missing-unwrap")] == ["req-no-unwrap", "req-app"]
    assert [f.request_id for f in report.by_kind("missing-fetch")] == ["req-no-fetch"]
    assert report.by_kind("missing-fetch")[0].severity == "high"
    assert report.by_kind("missing-fetch")[0].server_id == "secret-1"
    assert report.uses_matched == 15


def test_reconcile_flags_reused_request_id(logs):
    report = reconcile(logs["keystore"], logs["secret"])

    reused = report.by_kind("reused-request-id")
    assert [(f.server_id, f.request_id) for f in reused] == [("keystore-1", "req-0")]
    assert "already used by entry 2" in reused[0].message


def test_reconcile_flags_unexpected_actor_and_denial(logs):
    report = reconcile(logs["keystore"], logs["secret"])

    unexpected = report.by_kind("unexpected-actor")
    assert [(f.actor, f.severity) for f in unexpected] == [(APP, "high")]
    denied = report.by_kind("denied")
    assert [(f.actor, f.message) for f in denied] == [(WORKER, "record revoked")]


def test_reconcile_flags_burst_once(logs):
    report = reconcile(logs["keystore"], logs["secret"], burst_limit=10, burst_window_s=60)
    relaxed = reconcile(logs["keystore"], logs["secret"], burst_limit=12, burst_window_s=60)

    bursts = report.by_kind("burst")
    assert len(bursts) == 1
    assert bursts[0].workspace == "ws-0003"
    assert bursts[0].count == 12
    assert relaxed.by_kind("burst") == []


def test_reconcile_clean_logs_have_no_findings(tmp_path):
    keystore = open_log(tmp_path / "ks.sqlite3", "keystore-1", nacl.signing.SigningKey.generate())
    secret = open_log(tmp_path / "ss.sqlite3", "secret-1", nacl.signing.SigningKey.generate())
    for i in range(5):
        keystore.append(use_record(f"req-{i}"))
        secret.append(use_record(f"req-{i}", action="UnwrapShare"))

    report = reconcile(keystore, secret)
    keystore.close()
    secret.close()

    assert report.findings == []
    assert report.uses_matched == 5
