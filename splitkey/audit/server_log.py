"""Open a server's audit log from its [audit] configuration."""

from __future__ import annotations

from pathlib import Path

from splitkey.audit.log import AuditLog
from splitkey.config import AuditConfig
from splitkey.keyfiles import load_audit_signing_key


def open_server_log(config: AuditConfig, path: Path) -> AuditLog:
    """Open (or create) the audit log at `path`, signed with the configured key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return AuditLog(
        path,
        server_id=config.server_id,
        signing_key=load_audit_signing_key(config.signing_key),
        timeout_s=config.timeout_s,
        checkpoint_every=config.checkpoint_every,
        checkpoint_interval_s=config.checkpoint_interval_s,
        denial_window_s=config.denial_window_s,
    )
