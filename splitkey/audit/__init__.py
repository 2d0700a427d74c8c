"""The audit log: hash-chained, signed, witnessed by the other server, verifiable offline.

Servers build an `AuditRecord` per request and call `AuditLog.append` before
they release anything; auditors use `export_jsonl`, `verify_export`,
`reconcile` and `write_report` on the exports.
"""

from splitkey.audit.entry import AuditEntry
from splitkey.audit.export import ExportedLog, export_jsonl, load_export
from splitkey.audit.head import SignedHead
from splitkey.audit.log import AuditLog
from splitkey.audit.reconcile import Finding, ReconcileReport, reconcile
from splitkey.audit.record import AuditRecord
from splitkey.audit.report import render_report, write_report
from splitkey.audit.verify import Problem, VerificationReport, verify_export

__all__ = [
    "AuditEntry",
    "AuditLog",
    "AuditRecord",
    "ExportedLog",
    "Finding",
    "Problem",
    "ReconcileReport",
    "SignedHead",
    "VerificationReport",
    "export_jsonl",
    "load_export",
    "reconcile",
    "render_report",
    "verify_export",
    "write_report",
]
