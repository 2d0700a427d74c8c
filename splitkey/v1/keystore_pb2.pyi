from splitkey.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApiMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    API_MODE_UNSPECIFIED: _ClassVar[ApiMode]
    API_MODE_PLATFORM: _ClassVar[ApiMode]
    API_MODE_BYOK: _ClassVar[ApiMode]

class Resolution(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOLUTION_UNSPECIFIED: _ClassVar[Resolution]
    RESOLUTION_PLATFORM: _ClassVar[Resolution]
    RESOLUTION_BYOK: _ClassVar[Resolution]
    RESOLUTION_OPENROUTER_FALLBACK: _ClassVar[Resolution]
API_MODE_UNSPECIFIED: ApiMode
API_MODE_PLATFORM: ApiMode
API_MODE_BYOK: ApiMode
RESOLUTION_UNSPECIFIED: Resolution
RESOLUTION_PLATFORM: Resolution
RESOLUTION_BYOK: Resolution
RESOLUTION_OPENROUTER_FALLBACK: Resolution

class PutKeyRequest(_message.Message):
    __slots__ = ("request_id", "context", "ciphertext", "share_a", "wrap_b", "key_hint", "key_digest")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    SHARE_A_FIELD_NUMBER: _ClassVar[int]
    WRAP_B_FIELD_NUMBER: _ClassVar[int]
    KEY_HINT_FIELD_NUMBER: _ClassVar[int]
    KEY_DIGEST_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    context: _common_pb2.KeyContext
    ciphertext: bytes
    share_a: bytes
    wrap_b: bytes
    key_hint: str
    key_digest: bytes
    def __init__(self, request_id: _Optional[str] = ..., context: _Optional[_Union[_common_pb2.KeyContext, _Mapping]] = ..., ciphertext: _Optional[bytes] = ..., share_a: _Optional[bytes] = ..., wrap_b: _Optional[bytes] = ..., key_hint: _Optional[str] = ..., key_digest: _Optional[bytes] = ...) -> None: ...

class PutKeyResponse(_message.Message):
    __slots__ = ("record_id", "kek_a_version", "kek_b_version", "replaced_record_id")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    KEK_A_VERSION_FIELD_NUMBER: _ClassVar[int]
    KEK_B_VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLACED_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    kek_a_version: int
    kek_b_version: int
    replaced_record_id: str
    def __init__(self, record_id: _Optional[str] = ..., kek_a_version: _Optional[int] = ..., kek_b_version: _Optional[int] = ..., replaced_record_id: _Optional[str] = ...) -> None: ...

class FetchKeyRequest(_message.Message):
    __slots__ = ("request_id", "workspace", "model", "reply_key")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REPLY_KEY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    workspace: str
    model: str
    reply_key: bytes
    def __init__(self, request_id: _Optional[str] = ..., workspace: _Optional[str] = ..., model: _Optional[str] = ..., reply_key: _Optional[bytes] = ...) -> None: ...

class FetchKeyResponse(_message.Message):
    __slots__ = ("context", "ciphertext", "wrap_b", "sealed_share_a", "grant", "resolution")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    WRAP_B_FIELD_NUMBER: _ClassVar[int]
    SEALED_SHARE_A_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.KeyContext
    ciphertext: bytes
    wrap_b: bytes
    sealed_share_a: bytes
    grant: _common_pb2.UseGrant
    resolution: Resolution
    def __init__(self, context: _Optional[_Union[_common_pb2.KeyContext, _Mapping]] = ..., ciphertext: _Optional[bytes] = ..., wrap_b: _Optional[bytes] = ..., sealed_share_a: _Optional[bytes] = ..., grant: _Optional[_Union[_common_pb2.UseGrant, _Mapping]] = ..., resolution: _Optional[_Union[Resolution, str]] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ("workspace",)
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    def __init__(self, workspace: _Optional[str] = ...) -> None: ...

class KeyInfo(_message.Message):
    __slots__ = ("record_id", "provider", "key_hint", "status", "kek_a_version", "kek_b_version", "created_at_ms", "last_used_at_ms", "fingerprint")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    KEY_HINT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KEK_A_VERSION_FIELD_NUMBER: _ClassVar[int]
    KEK_B_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    provider: str
    key_hint: str
    status: str
    kek_a_version: int
    kek_b_version: int
    created_at_ms: int
    last_used_at_ms: int
    fingerprint: str
    def __init__(self, record_id: _Optional[str] = ..., provider: _Optional[str] = ..., key_hint: _Optional[str] = ..., status: _Optional[str] = ..., kek_a_version: _Optional[int] = ..., kek_b_version: _Optional[int] = ..., created_at_ms: _Optional[int] = ..., last_used_at_ms: _Optional[int] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[KeyInfo]
    def __init__(self, keys: _Optional[_Iterable[_Union[KeyInfo, _Mapping]]] = ...) -> None: ...

class RemoveKeyRequest(_message.Message):
    __slots__ = ("request_id", "workspace", "provider")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    workspace: str
    provider: str
    def __init__(self, request_id: _Optional[str] = ..., workspace: _Optional[str] = ..., provider: _Optional[str] = ...) -> None: ...

class RemoveKeyResponse(_message.Message):
    __slots__ = ("removed_record_id",)
    REMOVED_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    removed_record_id: str
    def __init__(self, removed_record_id: _Optional[str] = ...) -> None: ...

class SetModeRequest(_message.Message):
    __slots__ = ("request_id", "workspace", "mode")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    workspace: str
    mode: ApiMode
    def __init__(self, request_id: _Optional[str] = ..., workspace: _Optional[str] = ..., mode: _Optional[_Union[ApiMode, str]] = ...) -> None: ...

class GetWorkspaceRequest(_message.Message):
    __slots__ = ("workspace",)
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    def __init__(self, workspace: _Optional[str] = ...) -> None: ...

class WorkspaceInfo(_message.Message):
    __slots__ = ("workspace", "mode", "providers")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    mode: ApiMode
    providers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, workspace: _Optional[str] = ..., mode: _Optional[_Union[ApiMode, str]] = ..., providers: _Optional[_Iterable[str]] = ...) -> None: ...
