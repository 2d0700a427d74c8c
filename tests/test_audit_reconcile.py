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


def test_reconcile_folds_repeated_fetch(logs):
    # The two-day logs repeat req-0's fetch with the same actor and context, so it is a retry.
    report = reconcile(logs["keystore"], logs["secret"])

    assert report.by_kind("reused-request-id") == []
    assert [f for f in report.findings if f.request_id == "req-0"] == []


@pytest.fixture
def pair(tmp_path):
    keystore = open_log(tmp_path / "ks.sqlite3", "keystore-1", nacl.signing.SigningKey.generate())
    secret = open_log(tmp_path / "ss.sqlite3", "secret-1", nacl.signing.SigningKey.generate())
    yield keystore, secret
    keystore.close()
    secret.close()


def test_reconcile_counts_retries_as_one_use(pair):
    keystore, secret = pair
    for _attempt in range(3):
        keystore.append(use_record("req-retried"))
    for _attempt in range(2):
        secret.append(use_record("req-retried", action="UnwrapShare"))

    report = reconcile(keystore, secret, burst_limit=1)

    assert report.findings == []
    assert report.uses_matched == 1


def test_reconcile_reports_many_retries_low(pair):
    keystore, secret = pair
    first = keystore.append(use_record("req-retried"))
    for _attempt in range(5):
        last = keystore.append(use_record("req-retried"))
    secret.append(use_record("req-retried", action="UnwrapShare"))

    report = reconcile(keystore, secret)
    tolerant = reconcile(keystore, secret, max_attempts=6)

    (retried,) = report.findings
    assert (retried.kind, retried.severity, retried.server_id) == ("many-retries", "low", "keystore-1")
    assert (retried.seq, retried.count) == (first, 6)
    assert f"entries {first}..{last}" in retried.message
    assert tolerant.findings == []


def test_reconcile_reports_unmatched_retries_once(pair):
    keystore, secret = pair
    for _attempt in range(3):
        keystore.append(use_record("req-no-unwrap"))
        secret.append(use_record("req-no-fetch", action="UnwrapShare"))

    report = reconcile(keystore, secret)

    assert [(f.kind, f.request_id) for f in report.findings] == [
        ("missing-fetch", "req-no-fetch"), ("missing-unwrap", "req-no-unwrap"),
    ]


@pytest.mark.parametrize(
    ("other", "difference"),
    [
        ({"actor": WORKER.replace("gen-1", "gen-2")}, "another actor"),
        ({"context_hash": "ef" * 32}, "another context hash"),
        ({"actor": WORKER.replace("gen-1", "gen-2"), "context_hash": "ef" * 32}, "another actor and context hash"),
    ],
    ids=["actor", "context", "both"],
)
def test_reconcile_flags_request_id_reused(pair, other, difference):
    keystore, secret = pair
    first = keystore.append(use_record("req-shared"))
    second = keystore.append(use_record("req-shared", **other))
    secret.append(use_record("req-shared", action="UnwrapShare"))
    third = secret.append(use_record("req-shared", action="UnwrapShare", **other))

    report = reconcile(keystore, secret)

    reused = report.by_kind("reused-request-id")
    assert [(f.server_id, f.seq, f.severity) for f in reused] == [("keystore-1", second, "high"),
                                                                  ("secret-1", third, "high")]
    assert f"already used by entry {first} ({WORKER}) with {difference}" in reused[0].message
    assert report.uses_matched == 2


def test_reconcile_flags_second_grant_denial(pair):
    keystore, secret = pair
    keystore.append(use_record("req-twice"))
    keystore.append(use_record("req-twice"))
    secret.append(use_record("req-twice", action="UnwrapShare"))
    denied = secret.append(use_record(
        "req-twice", action="UnwrapShare", outcome="denied",
        reason="request_id was already used with another grant; use a new request_id",
    ))

    report = reconcile(keystore, secret)

    (reused,) = report.by_kind("reused-request-id")
    assert (reused.server_id, reused.seq, reused.severity) == ("secret-1", denied, "high")
    assert "the keystore logged 2 allowed FetchKey entries" in reused.message


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
