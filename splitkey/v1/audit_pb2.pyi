from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamEntriesRequest(_message.Message):
    __slots__ = ("after_seq", "start_ms", "end_ms", "workspace", "record_id", "actor", "action", "outcome", "limit")
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    start_ms: int
    end_ms: int
    workspace: str
    record_id: str
    actor: str
    action: str
    outcome: str
    limit: int
    def __init__(self, after_seq: _Optional[int] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., workspace: _Optional[str] = ..., record_id: _Optional[str] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., outcome: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class AuditLogEntry(_message.Message):
    __slots__ = ("seq", "time_ms", "server_id", "actor", "cert_fingerprint", "action", "workspace", "provider", "record_id", "key_versions", "request_id", "context_hash", "job_id", "outcome", "reason", "count", "public_key", "peer_server_id", "peer_seq", "peer_head_hash", "peer_time_ms", "peer_signature", "prev_hash", "entry_hash")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CERT_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_HASH_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    PEER_SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_SEQ_FIELD_NUMBER: _ClassVar[int]
    PEER_HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    PEER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PEER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    ENTRY_HASH_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time_ms: int
    server_id: str
    actor: str
    cert_fingerprint: str
    action: str
    workspace: str
    provider: str
    record_id: str
    key_versions: str
    request_id: str
    context_hash: str
    job_id: str
    outcome: str
    reason: str
    count: int
    public_key: str
    peer_server_id: str
    peer_seq: int
    peer_head_hash: str
    peer_time_ms: int
    peer_signature: str
    prev_hash: str
    entry_hash: str
    def __init__(self, seq: _Optional[int] = ..., time_ms: _Optional[int] = ..., server_id: _Optional[str] = ..., actor: _Optional[str] = ..., cert_fingerprint: _Optional[str] = ..., action: _Optional[str] = ..., workspace: _Optional[str] = ..., provider: _Optional[str] = ..., record_id: _Optional[str] = ..., key_versions: _Optional[str] = ..., request_id: _Optional[str] = ..., context_hash: _Optional[str] = ..., job_id: _Optional[str] = ..., outcome: _Optional[str] = ..., reason: _Optional[str] = ..., count: _Optional[int] = ..., public_key: _Optional[str] = ..., peer_server_id: _Optional[str] = ..., peer_seq: _Optional[int] = ..., peer_head_hash: _Optional[str] = ..., peer_time_ms: _Optional[int] = ..., peer_signature: _Optional[str] = ..., prev_hash: _Optional[str] = ..., entry_hash: _Optional[str] = ...) -> None: ...

class AuditSignedHead(_message.Message):
    __slots__ = ("server_id", "seq", "entry_hash", "time_ms", "signature")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ENTRY_HASH_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    seq: int
    entry_hash: str
    time_ms: int
    signature: str
    def __init__(self, server_id: _Optional[str] = ..., seq: _Optional[int] = ..., entry_hash: _Optional[str] = ..., time_ms: _Optional[int] = ..., signature: _Optional[str] = ...) -> None: ...

class GetCheckpointsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCheckpointsResponse(_message.Message):
    __slots__ = ("server_id", "public_key", "anchor_seq", "anchor_hash", "checkpoints")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_SEQ_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_HASH_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    public_key: str
    anchor_seq: int
    anchor_hash: str
    checkpoints: _containers.RepeatedCompositeFieldContainer[AuditSignedHead]
    def __init__(self, server_id: _Optional[str] = ..., public_key: _Optional[str] = ..., anchor_seq: _Optional[int] = ..., anchor_hash: _Optional[str] = ..., checkpoints: _Optional[_Iterable[_Union[AuditSignedHead, _Mapping]]] = ...) -> None: ...

class LatestHeadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WitnessHeadRequest(_message.Message):
    __slots__ = ("head",)
    HEAD_FIELD_NUMBER: _ClassVar[int]
    head: AuditSignedHead
    def __init__(self, head: _Optional[_Union[AuditSignedHead, _Mapping]] = ...) -> None: ...

class WitnessHeadResponse(_message.Message):
    __slots__ = ("witness_seq",)
    WITNESS_SEQ_FIELD_NUMBER: _ClassVar[int]
    witness_seq: int
    def __init__(self, witness_seq: _Optional[int] = ...) -> None: ...

class PruneRequest(_message.Message):
    __slots__ = ("checkpoint", "export_anchor_seq", "export_anchor_hash")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    EXPORT_ANCHOR_SEQ_FIELD_NUMBER: _ClassVar[int]
    EXPORT_ANCHOR_HASH_FIELD_NUMBER: _ClassVar[int]
    checkpoint: AuditSignedHead
    export_anchor_seq: int
    export_anchor_hash: str
    def __init__(self, checkpoint: _Optional[_Union[AuditSignedHead, _Mapping]] = ..., export_anchor_seq: _Optional[int] = ..., export_anchor_hash: _Optional[str] = ...) -> None: ...

class PruneResponse(_message.Message):
    __slots__ = ("pruned", "anchor_seq", "anchor_hash", "prune_seq")
    PRUNED_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_SEQ_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_HASH_FIELD_NUMBER: _ClassVar[int]
    PRUNE_SEQ_FIELD_NUMBER: _ClassVar[int]
    pruned: int
    anchor_seq: int
    anchor_hash: str
    prune_seq: int
    def __init__(self, pruned: _Optional[int] = ..., anchor_seq: _Optional[int] = ..., anchor_hash: _Optional[str] = ..., prune_seq: _Optional[int] = ...) -> None: ...
