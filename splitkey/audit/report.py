"""A self-contained HTML report of two servers' audit logs.

The page has inline SVG charts and the chart data as a JSON block
(`<script type="application/json" id="audit-data">`, never executed). It loads
nothing from elsewhere, and its Content-Security-Policy forbids scripts and
remote resources, so the page can be opened offline and mailed as one file.

A use is one decryption: an allowed FetchKey or UnwrapShare, counted once per
(request_id, actor, context_hash) even when both servers logged it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from splitkey.audit.charts import stacked_bar_svg
from splitkey.audit.entry import AuditEntry
from splitkey.audit.reconcile import (
    FETCH_ACTION,
    UNWRAP_ACTION,
    LogSource,
    ReconcileReport,
    load_entries,
    reconcile,
)

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; }
.high { background: #fde2e2; } .medium { background: #fff3d6; }
"""
# Findings listed in the table at most; the counts chart covers all of them.
MAX_TABLE_ROWS = 500


def build_report_data(keystore_entries: list[AuditEntry], secret_entries: list[AuditEntry],
                      findings: ReconcileReport) -> dict[str, object]:
    """Return the data behind every chart: {chart id: {"categories": […], "series": {…}}}."""
    uses = _unique_uses(keystore_entries + secret_entries)
    by_workspace: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_actor: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for entry in uses:
        day = _day(entry.time_ms)
        by_workspace[entry.workspace or "(none)"][day] += 1
        by_actor[entry.actor][day] += 1

    denials: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for entry in keystore_entries + secret_entries:
        if entry.outcome == "denied":
            denials[f"{entry.action}: {entry.reason or 'denied'}"][_day(entry.time_ms)] += entry.count

    finding_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for finding in findings.findings:
        finding_counts[finding.severity][finding.kind] += 1

    def chart(series: dict[str, dict[str, int]], categories: list[str] | None = None) -> dict[str, object]:
        plain = {name: dict(values) for name, values in series.items()}
        if categories is None:
            categories = sorted({c for values in plain.values() for c in values})
        return {"categories": categories, "series": plain}

    return {
        "uses-by-workspace": chart(by_workspace),
        "uses-by-actor": chart(by_actor),
        "denials-by-reason": chart(denials),
        "findings-by-kind": chart(finding_counts),
    }


def render_report(
    keystore: LogSource,
    secret: LogSource,
    *,
    title: str = "splitkey audit report",
    findings: ReconcileReport | None = None,
    generated_at: datetime | None = None,
) -> str:
    """Return the HTML page for the two logs; reconcile them unless `findings` is given."""
    keystore_entries = load_entries(keystore)
    secret_entries = load_entries(secret)
    if findings is None:
        findings = reconcile(keystore_entries, secret_entries)
    data = build_report_data(keystore_entries, secret_entries, findings)
    generated_at = generated_at or datetime.now(timezone.utc)

    charts = [
        ("uses-by-workspace", "Uses per day by workspace"),
        ("uses-by-actor", "Uses per day by actor"),
        ("denials-by-reason", "Denials per day by action and reason"),
        ("findings-by-kind", "Reconciliation findings by kind and severity"),
    ]
    sections = []
    for chart_id, heading in charts:
        chart_data = data[chart_id]
        sections.append(f"<h2>{escape(heading)}</h2>")
        sections.append(stacked_bar_svg(chart_id, heading, chart_data["categories"], chart_data["series"]))

    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>Generated {escape(generated_at.isoformat(timespec='seconds'))}. "
        f"Keystore entries: {len(keystore_entries)}. Secret server entries: {len(secret_entries)}. "
        f"Uses matched on both servers: {findings.uses_matched}.</p>",
        *sections,
        "<h2>Findings</h2>",
        _findings_table(findings),
        f'<script type="application/json" id="audit-data">{_json_for_html(data)}</script>',
        "</body></html>",
    ])


def write_report(path: Path | str, keystore: LogSource, secret: LogSource, **options) -> Path:
    """Write `render_report(keystore, secret, **options)` to `path` and return the path."""
    path = Path(path)
    path.write_text(render_report(keystore, secret, **options), encoding="utf-8")
    return path


def _unique_uses(entries: list[AuditEntry]) -> list[AuditEntry]:
    earliest: dict[tuple[str, str, str], AuditEntry] = {}
    for entry in entries:
        if entry.outcome != "allowed" or entry.action not in (FETCH_ACTION, UNWRAP_ACTION):
            continue
        key = (entry.request_id, entry.actor, entry.context_hash)
        if key not in earliest or entry.time_ms < earliest[key].time_ms:
            earliest[key] = entry
    return list(earliest.values())


def _findings_table(findings: ReconcileReport) -> str:
    if not findings.findings:
        return "<p>No findings.</p>"
    rows = ['<table id="findings"><tr><th>severity</th><th>kind</th><th>server</th><th>seq</th>'
            "<th>time (UTC)</th><th>actor</th><th>workspace</th><th>request id</th><th>count</th>"
            "<th>message</th></tr>"]
    for finding in findings.findings[:MAX_TABLE_ROWS]:
        cells = [finding.severity, finding.kind, finding.server_id, str(finding.seq),
                 _time(finding.time_ms), finding.actor, finding.workspace, finding.request_id,
                 str(finding.count), finding.message]
        rows.append(f'<tr class="{escape(finding.severity)}">'
                    + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>")
    rows.append("</table>")
    hidden = len(findings.findings) - MAX_TABLE_ROWS
    if hidden > 0:
        rows.append(f"<p>{hidden} more findings are not listed; reconcile the exports to see all.</p>")
    return "".join(rows)


def _json_for_html(data: object) -> str:
    # Escaped so that no string in the data can close the script element.
    text = json.dumps(data, sort_keys=True)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _day(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, timezone.utc).strftime("%Y-%m-%d")


def _time(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
