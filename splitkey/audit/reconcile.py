"""Reconciliation of the keystore's and the secret server's audit logs.

Every decryption shows up twice: an allowed `FetchKey` on the keystore and an
allowed `UnwrapShare` on the secret server, with the same
(request_id, actor, context_hash). The client retries both calls on transient
errors with the same request, so one server can log one use several times.
Entries of one action with the same (request_id, actor, context_hash) are
folded into one use, whose retry count is the number of entries minus one.
Findings:

- `missing-fetch`: an unwrap with no logged fetch. The secret server released
  a share that the keystore's log does not account for (high).
- `missing-unwrap`: a fetch with no logged unwrap. Usually a worker that died
  between the calls, but also what a secret-server log with gaps looks like (medium).
- `failed-unwrap`: a fetch whose unwrap the secret server logged as denied or
  failed, with no allowed one: no share was released for it (low).
- `reused-request-id`: one request id on uses with different actors or
  context hashes on one server, or a second grant for one request id that the
  secret server rejected (high).
- `many-retries`: one use logged more than `max_attempts` times (low).
- `unexpected-actor`: an identity whose role may not call the action (high
  when allowed, low when denied).
- `burst`: more than `burst_limit` decryptions by one actor in one workspace
  within `burst_window_s` (medium).
- `denied`: every denial, with its folded count (info).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from splitkey.audit.entry import GENESIS_ACTION, WITNESS_ACTION, AuditEntry
from splitkey.audit.export import ExportedLog, load_export
from splitkey.audit.log import AuditLog

FETCH_ACTION = "FetchKey"
UNWRAP_ACTION = "UnwrapShare"
# The client's default [retry] max_attempts: one use logged more often than this is reported.
DEFAULT_MAX_ATTEMPTS = 4
# Part of the denial reason of the secret server's replay guard (secret_server/replay.py)
# for an UnwrapShare that brings a second grant for a request id it has already served.
SECOND_GRANT_REASON = "already used with another grant"

# Roles (the first path segment of the SPIFFE ID) allowed to call each RPC.
EXPECTED_ROLES: Mapping[str, frozenset[str]] = {
    "PutKey": frozenset({"app", "security"}),
    "FetchKey": frozenset({"worker"}),
    "ListKeys": frozenset({"app", "security", "auditor"}),
    "WrapShare": frozenset({"app", "security"}),
    "UnwrapShare": frozenset({"worker"}),
    "RewrapShares": frozenset({"keystore"}),
    "Prune": frozenset({"security"}),
}

SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2, "info": 3}

LogSource = AuditLog | ExportedLog | Path | str | Iterable[AuditEntry]
# (request_id, actor, context_hash): the key that joins a fetch to its unwrap.
JoinKey = tuple[str, str, str]


@dataclass(frozen=True)
class Finding:
    """One reconciliation finding, pointing at the entry that raised it."""

    kind: str
    severity: str
    server_id: str
    seq: int
    time_ms: int
    actor: str
    workspace: str
    request_id: str
    message: str
    count: int = 1


@dataclass
class ReconcileReport:
    """All findings, ordered by severity and time."""

    findings: list[Finding] = field(default_factory=list)
    uses_matched: int = 0

    def by_kind(self, kind: str) -> list[Finding]:
        """Return the findings of one kind."""
        return [f for f in self.findings if f.kind == kind]

    def counts(self) -> dict[str, int]:
        """Return the number of findings per kind."""
        return dict(Counter(f.kind for f in self.findings))


def role_of(actor: str) -> str | None:
    """Return the role segment of `spiffe://<trust-domain>/<role>/<name>`, or None."""
    if not actor.startswith("spiffe://"):
        return None
    parts = actor[len("spiffe://"):].split("/")
    if len(parts) < 3 or not parts[1]:
        return None
    return parts[1]


def load_entries(source: LogSource) -> list[AuditEntry]:
    """Return the entries of a live log, a loaded or on-disk export, or an iterable."""
    if isinstance(source, AuditLog):
        return list(source.entries())
    if isinstance(source, (ExportedLog, Path, str)):
        return load_export(source).entries
    return list(source)


def reconcile(
    keystore: LogSource,
    secret: LogSource,
    *,
    expected_roles: Mapping[str, frozenset[str]] = EXPECTED_ROLES,
    burst_limit: int = 30,
    burst_window_s: float = 60.0,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> ReconcileReport:
    """Join the two logs on (request_id, actor, context_hash) and return the findings.

    Entries of one action with the same key are retries of one use and count
    once. A use logged more than `max_attempts` times is reported as
    `many-retries`. A fetch matches an unwrap with that key whatever the
    unwrap's outcome, so a denied or failed unwrap is a `failed-unwrap`, not a
    `missing-unwrap`.
    """
    keystore_entries = load_entries(keystore)
    secret_entries = load_entries(secret)
    fetches = _fold_retries(_uses(keystore_entries, FETCH_ACTION))
    unwraps = _fold_retries(_uses(secret_entries, UNWRAP_ACTION))
    failed_unwraps: dict[JoinKey, AuditEntry] = {}
    for entry in secret_entries:
        if entry.action == UNWRAP_ACTION and entry.outcome != "allowed":
            failed_unwraps.setdefault(_join_key(entry), entry)
    report = ReconcileReport()

    report.uses_matched = len(fetches.keys() & unwraps.keys())
    for key, attempts in unwraps.items():
        if key not in fetches:
            report.findings.append(_finding(
                "missing-fetch", "high", attempts[0],
                "the secret server unwrapped a share for a request the keystore did not log",
            ))
    for key, attempts in fetches.items():
        if key in unwraps:
            continue
        entry = attempts[0]
        failed = failed_unwraps.get(key)
        if failed is not None:
            report.findings.append(_finding(
                "failed-unwrap", "low", failed,
                f"the unwrap for the keystore's fetch in entry {entry.seq} ended with outcome {failed.outcome}: "
                f"{failed.reason or 'no reason logged'}",
            ))
        else:
            report.findings.append(_finding(
                "missing-unwrap", "medium", entry, "the keystore logged a fetch with no unwrap on the secret server",
            ))

    for uses in (fetches, unwraps):
        report.findings.extend(_reused_request_ids(uses))
        report.findings.extend(_many_retries(uses, max_attempts))
    report.findings.extend(_second_grants(secret_entries, fetches))
    report.findings.extend(_unexpected_actors(keystore_entries + secret_entries, expected_roles))
    first_attempts = [attempts[0] for attempts in (unwraps or fetches).values()]
    report.findings.extend(_bursts(first_attempts, burst_limit, burst_window_s))
    for entry in keystore_entries + secret_entries:
        if entry.outcome == "denied":
            report.findings.append(_finding("denied", "info", entry, entry.reason or "denied"))

    report.findings.sort(key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), f.time_ms, f.server_id, f.seq))
    return report


def _uses(entries: list[AuditEntry], action: str) -> list[AuditEntry]:
    return [e for e in entries if e.action == action and e.outcome == "allowed"]


def _join_key(entry: AuditEntry) -> JoinKey:
    return (entry.request_id, entry.actor, entry.context_hash)


def _fold_retries(uses: list[AuditEntry]) -> dict[JoinKey, list[AuditEntry]]:
    """Group the allowed entries of one action by join key, each group in seq order: one use and its retries."""
    folded: dict[JoinKey, list[AuditEntry]] = {}
    for entry in sorted(uses, key=lambda e: e.seq):
        folded.setdefault(_join_key(entry), []).append(entry)
    return folded


def _finding(kind: str, severity: str, entry: AuditEntry, message: str) -> Finding:
    return Finding(
        kind=kind,
        severity=severity,
        server_id=entry.server_id,
        seq=entry.seq,
        time_ms=entry.time_ms,
        actor=entry.actor,
        workspace=entry.workspace,
        request_id=entry.request_id,
        message=message,
        count=entry.count,
    )


def _reused_request_ids(uses: dict[JoinKey, list[AuditEntry]]) -> list[Finding]:
    """Return a finding for each use whose request id an earlier use with another actor or context took."""
    first_use: dict[str, AuditEntry] = {}
    findings = []
    for attempts in sorted(uses.values(), key=lambda a: a[0].seq):
        entry = attempts[0]
        first = first_use.setdefault(entry.request_id, entry)
        if first is entry:
            continue
        differences = []
        if entry.actor != first.actor:
            differences.append("actor")
        if entry.context_hash != first.context_hash:
            differences.append("context hash")
        findings.append(_finding(
            "reused-request-id", "high", entry,
            f"request id already used by entry {first.seq} ({first.actor}) with another {' and '.join(differences)}",
        ))
    return findings


def _many_retries(uses: dict[JoinKey, list[AuditEntry]], max_attempts: int) -> list[Finding]:
    findings = []
    for attempts in uses.values():
        if len(attempts) <= max_attempts:
            continue
        finding = _finding(
            "many-retries", "low", attempts[0],
            f"one use was logged {len(attempts)} times (entries {attempts[0].seq}..{attempts[-1].seq}), "
            f"more than the {max_attempts} attempts expected of a client's retries",
        )
        findings.append(replace(finding, count=len(attempts)))
    return findings


def _second_grants(secret_entries: list[AuditEntry], fetches: dict[JoinKey, list[AuditEntry]]) -> list[Finding]:
    """Return a finding for each unwrap the secret server denied because it brought a second grant.

    A client that retries sends the grant it received, so a second grant under
    one request id means two FetchKey replies were used, not one retried.
    """
    fetch_counts: Counter[str] = Counter()
    for (request_id, _actor, _context_hash), attempts in fetches.items():
        fetch_counts[request_id] += len(attempts)
    findings = []
    for entry in secret_entries:
        if entry.action != UNWRAP_ACTION or entry.outcome != "denied" or SECOND_GRANT_REASON not in entry.reason:
            continue
        findings.append(_finding(
            "reused-request-id", "high", entry,
            f"the secret server rejected a second grant for this request id; the keystore logged "
            f"{fetch_counts[entry.request_id]} allowed FetchKey entries for it",
        ))
    return findings


def _unexpected_actors(entries: list[AuditEntry], expected_roles: Mapping[str, frozenset[str]]) -> list[Finding]:
    findings = []
    for entry in entries:
        if entry.action in (GENESIS_ACTION, WITNESS_ACTION) or entry.action not in expected_roles:
            continue
        role = role_of(entry.actor)
        allowed_roles = expected_roles[entry.action]
        if role in allowed_roles:
            continue
        severity = "high" if entry.outcome == "allowed" else "low"
        findings.append(_finding(
            "unexpected-actor", severity, entry,
            f"role {role!r} is not expected to call {entry.action} (expected {', '.join(sorted(allowed_roles))}); "
            f"outcome {entry.outcome}",
        ))
    return findings


def _bursts(uses: list[AuditEntry], limit: int, window_s: float) -> list[Finding]:
    """Return one finding per run of more than `limit` uses within `window_s`, per actor and workspace."""
    window_ms = window_s * 1000
    groups: dict[tuple[str, str], list[AuditEntry]] = defaultdict(list)
    for entry in uses:
        groups[(entry.actor, entry.workspace)].append(entry)
    findings = []
    for group in groups.values():
        group.sort(key=lambda e: (e.time_ms, e.seq))
        start = 0
        in_burst = False
        burst_first: AuditEntry | None = None
        burst_peak = 0
        for end, entry in enumerate(group):
            while entry.time_ms - group[start].time_ms >= window_ms:
                start += 1
            in_window = end - start + 1
            if in_window > limit:
                if not in_burst:
                    in_burst, burst_first, burst_peak = True, group[start], in_window
                burst_peak = max(burst_peak, in_window)
            elif in_burst:
                findings.append(_burst_finding(burst_first, burst_peak, limit, window_s))
                in_burst = False
        if in_burst:
            findings.append(_burst_finding(burst_first, burst_peak, limit, window_s))
    return findings


def _burst_finding(first: AuditEntry | None, peak: int, limit: int, window_s: float) -> Finding:
    assert first is not None
    finding = _finding(
        "burst", "medium", first,
        f"{peak} decryptions within {window_s:g} s, more than the limit {limit}",
    )
    return replace(finding, count=peak)
