"""The AuditLog gRPC service, served by both servers for their own log.

Auditors stream entries and fetch signed checkpoints. The keystore fetches
the secret server's latest head and pushes its own with WitnessHead, which
only the secret server accepts. The security team prunes the log up to a
checkpoint of a verified export. The guard's allow-list decides who may call
what; these handlers only check the requests.
"""

from __future__ import annotations

import logging

from splitkey.audit.entry import AuditEntry
from splitkey.audit.head import SignedHead
from splitkey.audit.log import AuditLog
from splitkey.audit.record import MAX_LENGTHS, OUTCOMES
from splitkey.errors import IntegrityError, InvalidInputError, PreconditionError
from splitkey.rpc.guard import current_identity
from splitkey.v1 import audit_pb2, audit_pb2_grpc

logger = logging.getLogger(__name__)

_TEXT_FILTERS = ("workspace", "record_id", "actor", "action", "outcome")


def head_to_message(head: SignedHead) -> audit_pb2.AuditSignedHead:
    """Return the protobuf form of a signed head."""
    return audit_pb2.AuditSignedHead(**head.to_dict())


def head_from_message(message: audit_pb2.AuditSignedHead) -> SignedHead:
    """Return a SignedHead from its protobuf form; raise InvalidInputError when a field is malformed."""
    return SignedHead.from_dict({
        "server_id": message.server_id,
        "seq": message.seq,
        "entry_hash": message.entry_hash,
        "time_ms": message.time_ms,
        "signature": message.signature,
    })


def entry_to_message(entry: AuditEntry) -> audit_pb2.AuditLogEntry:
    """Return the protobuf form of an entry."""
    return audit_pb2.AuditLogEntry(**entry.to_dict())


def entry_from_message(message: audit_pb2.AuditLogEntry) -> AuditEntry:
    """Return the AuditEntry of a streamed message (its hash is checked by verify, not here)."""
    return AuditEntry.from_dict({field.name: getattr(message, field.name) for field in message.DESCRIPTOR.fields})


def entry_filters(request: audit_pb2.StreamEntriesRequest) -> dict[str, object]:
    """Return the keyword filters of `AuditLog.entries` for a request; raise InvalidInputError on a bad one."""
    filters: dict[str, object] = {}
    for name, keyword in (("after_seq", "since_seq"), ("start_ms", "start_ms"), ("end_ms", "end_ms")):
        if request.HasField(name):
            value = getattr(request, name)
            if value < 0:
                raise InvalidInputError(f"{name} must be zero or positive, got {value}")
            filters[keyword] = value
    for name in _TEXT_FILTERS:
        if not request.HasField(name):
            continue
        value = getattr(request, name)
        if len(value) > MAX_LENGTHS[name]:
            raise InvalidInputError(f"filter {name} is longer than {MAX_LENGTHS[name]} characters")
        filters[name] = value
    if "outcome" in filters and filters["outcome"] not in OUTCOMES:
        raise InvalidInputError(f"filter outcome must be one of {', '.join(OUTCOMES)}, got {filters['outcome']!r}")
    return filters


class AuditLogServicer(audit_pb2_grpc.AuditLogServicer):
    """Serves one server's audit log; `witness_key` set means this server accepts WitnessHead."""

    def __init__(self, log: AuditLog, *, witness_key: str | None = None) -> None:
        self._log = log
        self._witness_key = witness_key

    def StreamEntries(self, request, context):
        # NOTE: the guard writes a stream's audit entry before this generator
        # runs, so the entry names the caller but not these filters.
        filters = entry_filters(request)
        sent = 0
        for entry in self._log.entries(**filters):
            if request.limit and sent >= request.limit:
                return
            yield entry_to_message(entry)
            sent += 1

    def GetCheckpoints(self, request, context):
        anchor_seq, anchor_hash = self._log.anchor()
        return audit_pb2.GetCheckpointsResponse(
            server_id=self._log.server_id,
            public_key=self._log.public_key,
            anchor_seq=anchor_seq,
            anchor_hash=anchor_hash,
            checkpoints=[head_to_message(head) for head in self._log.checkpoints()],
        )

    def LatestHead(self, request, context):
        return head_to_message(self._log.checkpoint())

    def WitnessHead(self, request, context):
        if self._witness_key is None:
            raise PreconditionError(
                f"{self._log.server_id} does not accept witnessed heads; it fetches the other server's head itself"
            )
        if not request.HasField("head"):
            raise InvalidInputError("head is missing; send the keystore's latest signed head")
        head = head_from_message(request.head)
        seq = self._log.witness(head, self._witness_key)
        logger.info("witnessed head seq %d of %s as entry %d", head.seq, head.server_id, seq)
        return audit_pb2.WitnessHeadResponse(witness_seq=seq)

    def Prune(self, request, context):
        if not request.HasField("checkpoint"):
            raise InvalidInputError("checkpoint is missing; send the newest checkpoint of a verified export")
        if request.export_anchor_seq < 0:
            raise InvalidInputError(f"export_anchor_seq must be zero or positive, got {request.export_anchor_seq}")
        checkpoint = head_from_message(request.checkpoint)
        identity = current_identity()
        try:
            result = self._log.prune_to_checkpoint(
                checkpoint,
                export_anchor=(request.export_anchor_seq, request.export_anchor_hash),
                actor=identity.uri,
                cert_fingerprint=identity.fingerprint,
            )
        except IntegrityError:
            logger.warning(
                "prune by %s rejected: checkpoint seq %d does not verify under this log's key",
                identity.uri, checkpoint.seq,
            )
            raise
        return audit_pb2.PruneResponse(
            pruned=result.deleted,
            anchor_seq=result.anchor_seq,
            anchor_hash=result.anchor_hash,
            prune_seq=result.prune_seq,
        )
