from splitkey.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WrapShareRequest(_message.Message):
    __slots__ = ("request_id", "context", "share_b")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SHARE_B_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    context: _common_pb2.KeyContext
    share_b: bytes
    def __init__(self, request_id: _Optional[str] = ..., context: _Optional[_Union[_common_pb2.KeyContext, _Mapping]] = ..., share_b: _Optional[bytes] = ...) -> None: ...

class WrapShareResponse(_message.Message):
    __slots__ = ("wrap_b", "kek_b_version")
    WRAP_B_FIELD_NUMBER: _ClassVar[int]
    KEK_B_VERSION_FIELD_NUMBER: _ClassVar[int]
    wrap_b: bytes
    kek_b_version: int
    def __init__(self, wrap_b: _Optional[bytes] = ..., kek_b_version: _Optional[int] = ...) -> None: ...

class UnwrapShareRequest(_message.Message):
    __slots__ = ("request_id", "context", "wrap_b", "grant", "reply_key")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    WRAP_B_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    REPLY_KEY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    context: _common_pb2.KeyContext
    wrap_b: bytes
    grant: _common_pb2.UseGrant
    reply_key: bytes
    def __init__(self, request_id: _Optional[str] = ..., context: _Optional[_Union[_common_pb2.KeyContext, _Mapping]] = ..., wrap_b: _Optional[bytes] = ..., grant: _Optional[_Union[_common_pb2.UseGrant, _Mapping]] = ..., reply_key: _Optional[bytes] = ...) -> None: ...

class UnwrapShareResponse(_message.Message):
    __slots__ = ("sealed_share_b",)
    SEALED_SHARE_B_FIELD_NUMBER: _ClassVar[int]
    sealed_share_b: bytes
    def __init__(self, sealed_share_b: _Optional[bytes] = ...) -> None: ...

class TombstoneRequest(_message.Message):
    __slots__ = ("request_id", "record_id", "workspace", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    record_id: str
    workspace: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., record_id: _Optional[str] = ..., workspace: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class TombstoneResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
