"""AuditClient: read both servers' audit logs over the AuditLog service (role
auditor), and prune them (role security).

`export(server)` returns an `ExportedLog`, the same object an offline JSON
Lines export loads into, so verify, reconcile and report work the same way on
a live log and on a file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from client.channels import ServerChannel
from client.retry import call_with_retry
from splitkey.audit.entry import WITNESS_ACTION, AuditEntry
from splitkey.audit.export import ExportedLog
from splitkey.audit.head import SignedHead
from splitkey.audit.service import entry_from_message, head_from_message, head_to_message
from splitkey.config import ClientConfig, load_client_config
from splitkey.errors import ConfigError, InvalidInputError
from splitkey.v1 import audit_pb2, audit_pb2_grpc

SERVERS = ("keystore", "secret")
# Deadline of one whole StreamEntries call, in seconds: a full log is larger than one reply.
STREAM_TIMEOUT_S = 300.0
# Tail re-reads by `export_both`. A log falls behind again only when another
# head exchange lands during the previous re-read, which takes milliseconds.
EXPORT_BOTH_REREADS = 3
_FILTERS = ("after_seq", "start_ms", "end_ms", "workspace", "record_id", "actor", "action", "outcome")


class AuditClient:
    """Reads the audit logs of the servers named in a client configuration."""

    def __init__(self, config: ClientConfig):
        self.config = config
        days = config.cert_expiry_warning_days
        self._channels: dict[str, ServerChannel] = {}
        for server, endpoint, name in (
            ("keystore", config.keystore, "keystore"),
            ("secret", config.secret, "secret server"),
        ):
            if endpoint is not None:
                self._channels[server] = ServerChannel(name, endpoint, audit_pb2_grpc.AuditLogStub,
                                                       expiry_warning_days=days)

    @classmethod
    def from_config(cls, path: str | os.PathLike) -> "AuditClient":
        return cls(load_client_config(path))

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    def __enter__(self) -> "AuditClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _channel(self, server: str) -> ServerChannel:
        if server not in SERVERS:
            raise InvalidInputError(f"server must be one of {', '.join(SERVERS)}, got {server!r}")
        channel = self._channels.get(server)
        if channel is None:
            raise ConfigError(f"this client configuration has no [{server}] table; it cannot read that server's log")
        return channel

    def _call(self, server: str, method: str, request, timeout_s: float | None = None):
        channel = self._channel(server)
        timeout = timeout_s or self.config.rpc_timeout_s
        return call_with_retry(
            lambda: getattr(channel.stub, method)(request, timeout=timeout),
            server=channel.name,
            policy=self.config.retry,
        )

    def entries(self, server: str, *, limit: int = 0, **filters) -> Iterator[AuditEntry]:
        """Return the entries of one server's log that match every filter given, in seq order.

        Filters: after_seq, start_ms, end_ms (Unix ms), workspace, record_id,
        actor, action, outcome. The whole stream is read before the first
        entry is returned, so a failed stream is retried from the start.
        """
        unknown = set(filters) - set(_FILTERS)
        if unknown:
            raise InvalidInputError(f"unknown audit filters: {', '.join(sorted(unknown))}")
        request = audit_pb2.StreamEntriesRequest(
            limit=limit, **{name: value for name, value in filters.items() if value is not None}
        )
        channel = self._channel(server)
        messages = call_with_retry(
            lambda: list(channel.stub.StreamEntries(request, timeout=STREAM_TIMEOUT_S)),
            server=channel.name,
            policy=self.config.retry,
        )
        return iter([entry_from_message(message) for message in messages])

    def checkpoints(self, server: str) -> audit_pb2.GetCheckpointsResponse:
        """Return the log's server id, public key, anchor and signed checkpoints."""
        return self._call(server, "GetCheckpoints", audit_pb2.GetCheckpointsRequest())

    def latest_head(self, server: str) -> SignedHead:
        """Ask the server to sign its current head, and return it."""
        return head_from_message(self._call(server, "LatestHead", audit_pb2.LatestHeadRequest()))

    def prune(self, server: str, checkpoint: SignedHead, export_anchor: tuple[int, str]) -> audit_pb2.PruneResponse:
        """Ask one server to delete its entries up to `checkpoint` (role security).

        `checkpoint` is the newest checkpoint of an export that passed
        verification, and `export_anchor` the (seq, hash) that export starts
        after. A retried call after a lost reply deletes nothing more and
        returns pruned 0, because the log then already starts after the checkpoint.
        """
        request = audit_pb2.PruneRequest(
            checkpoint=head_to_message(checkpoint),
            export_anchor_seq=export_anchor[0],
            export_anchor_hash=export_anchor[1],
        )
        return self._call(server, "Prune", request)

    def export(self, server: str) -> ExportedLog:
        """Read one server's whole log: header, every entry and every checkpoint.

        Checkpoints are read before the entries, so every checkpoint names an
        entry that the export contains (unless the log was pruned in between).
        """
        info = self.checkpoints(server)
        entries = list(self.entries(server))
        return ExportedLog(
            server_id=info.server_id,
            public_key=info.public_key,
            anchor_seq=info.anchor_seq,
            anchor_hash=info.anchor_hash,
            entries=entries,
            checkpoints=[head_from_message(head) for head in info.checkpoints],
        )

    def export_both(self, *, max_rereads: int = EXPORT_BOTH_REREADS) -> dict[str, ExportedLog]:
        """Read both servers' logs and return {"keystore": ExportedLog, "secret": ExportedLog}.

        The logs are read one after the other. A head exchange between the
        reads makes the log read second witness a head of the log read first
        beyond the end of that read, which verify would report as truncation.
        So after both reads, each log that its peer witnessed beyond the end
        of what was read gets its tail read again, for up to `max_rereads`
        rounds. A round stops early when no log grew: a log that still ends
        before a witnessed head then really lacks those entries.
        """
        logs = {server: self.export(server) for server in SERVERS}
        for _round in range(max_rereads):
            behind = [
                server for server, log in logs.items()
                if _witnessed_seq(log.server_id, logs[_other(server)]) > _last_seq(log)
            ]
            added = 0
            for server in behind:
                added += self._read_tail(server, logs[server])
            if not added:
                break
        return logs

    def _read_tail(self, server: str, log: ExportedLog) -> int:
        """Append the entries after the end of `log` to it; return how many were added."""
        tail = list(self.entries(server, after_seq=_last_seq(log)))
        log.entries.extend(tail)
        return len(tail)


def _other(server: str) -> str:
    return SERVERS[1 - SERVERS.index(server)]


def _last_seq(log: ExportedLog) -> int:
    return log.entries[-1].seq if log.entries else log.anchor_seq


def _witnessed_seq(server_id: str, peer: ExportedLog) -> int:
    """Return the highest seq of `server_id`'s log that `peer` witnessed, or -1."""
    return max(
        (e.peer_seq for e in peer.entries if e.action == WITNESS_ACTION and e.peer_server_id == server_id),
        default=-1,
    )
