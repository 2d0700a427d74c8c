from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class KeyContext(_message.Message):
    __slots__ = ("format_version", "deployment", "workspace", "provider", "record_id")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    deployment: str
    workspace: str
    provider: str
    record_id: str
    def __init__(self, format_version: _Optional[int] = ..., deployment: _Optional[str] = ..., workspace: _Optional[str] = ..., provider: _Optional[str] = ..., record_id: _Optional[str] = ...) -> None: ...

class UseGrant(_message.Message):
    __slots__ = ("worker_identity", "request_id", "context_hash", "wrap_b_hash", "reply_key", "expires_at_ms", "signature", "requested_workspace")
    WORKER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_HASH_FIELD_NUMBER: _ClassVar[int]
    WRAP_B_HASH_FIELD_NUMBER: _ClassVar[int]
    REPLY_KEY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    worker_identity: str
    request_id: str
    context_hash: bytes
    wrap_b_hash: bytes
    reply_key: bytes
    expires_at_ms: int
    signature: bytes
    requested_workspace: str
    def __init__(self, worker_identity: _Optional[str] = ..., request_id: _Optional[str] = ..., context_hash: _Optional[bytes] = ..., wrap_b_hash: _Optional[bytes] = ..., reply_key: _Optional[bytes] = ..., expires_at_ms: _Optional[int] = ..., signature: _Optional[bytes] = ..., requested_workspace: _Optional[str] = ...) -> None: ...
