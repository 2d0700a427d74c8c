from splitkey.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AddKekVersionRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class ActivateKekVersionRequest(_message.Message):
    __slots__ = ("request_id", "version")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    version: int
    def __init__(self, request_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class KekVersionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KekVersion(_message.Message):
    __slots__ = ("version", "state", "rows")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    version: int
    state: str
    rows: int
    def __init__(self, version: _Optional[int] = ..., state: _Optional[str] = ..., rows: _Optional[int] = ...) -> None: ...

class KekVersionsResponse(_message.Message):
    __slots__ = ("kind", "versions", "active_version")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    kind: str
    versions: _containers.RepeatedCompositeFieldContainer[KekVersion]
    active_version: int
    def __init__(self, kind: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[KekVersion, _Mapping]]] = ..., active_version: _Optional[int] = ...) -> None: ...

class StartRewrapRequest(_message.Message):
    __slots__ = ("kind", "batch_size", "max_rows_per_second")
    KIND_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    batch_size: int
    max_rows_per_second: int
    def __init__(self, kind: _Optional[str] = ..., batch_size: _Optional[int] = ..., max_rows_per_second: _Optional[int] = ...) -> None: ...

class RewrapJob(_message.Message):
    __slots__ = ("job_id", "kind", "target_version", "state", "rows_total", "rows_done", "rows_left", "rows_per_second", "started_at_ms", "updated_at_ms", "last_error", "batch_size", "max_rows_per_second")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ROWS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ROWS_DONE_FIELD_NUMBER: _ClassVar[int]
    ROWS_LEFT_FIELD_NUMBER: _ClassVar[int]
    ROWS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: str
    target_version: int
    state: str
    rows_total: int
    rows_done: int
    rows_left: int
    rows_per_second: float
    started_at_ms: int
    updated_at_ms: int
    last_error: str
    batch_size: int
    max_rows_per_second: int
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[str] = ..., target_version: _Optional[int] = ..., state: _Optional[str] = ..., rows_total: _Optional[int] = ..., rows_done: _Optional[int] = ..., rows_left: _Optional[int] = ..., rows_per_second: _Optional[float] = ..., started_at_ms: _Optional[int] = ..., updated_at_ms: _Optional[int] = ..., last_error: _Optional[str] = ..., batch_size: _Optional[int] = ..., max_rows_per_second: _Optional[int] = ...) -> None: ...

class RewrapStatusRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class RewrapStatusResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[RewrapJob]
    def __init__(self, jobs: _Optional[_Iterable[_Union[RewrapJob, _Mapping]]] = ...) -> None: ...

class RetireKekVersionRequest(_message.Message):
    __slots__ = ("request_id", "kind", "version")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    kind: str
    version: int
    def __init__(self, request_id: _Optional[str] = ..., kind: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RetireKekVersionResponse(_message.Message):
    __slots__ = ("state", "proposed_by", "approved_by")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    state: str
    proposed_by: str
    approved_by: str
    def __init__(self, state: _Optional[str] = ..., proposed_by: _Optional[str] = ..., approved_by: _Optional[str] = ...) -> None: ...

class RewrapItem(_message.Message):
    __slots__ = ("context", "wrap_b", "r")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    WRAP_B_FIELD_NUMBER: _ClassVar[int]
    R_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.KeyContext
    wrap_b: bytes
    r: bytes
    def __init__(self, context: _Optional[_Union[_common_pb2.KeyContext, _Mapping]] = ..., wrap_b: _Optional[bytes] = ..., r: _Optional[bytes] = ...) -> None: ...

class RewrapSharesRequest(_message.Message):
    __slots__ = ("request_id", "items")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    items: _containers.RepeatedCompositeFieldContainer[RewrapItem]
    def __init__(self, request_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[RewrapItem, _Mapping]]] = ...) -> None: ...

class RewrapResult(_message.Message):
    __slots__ = ("record_id", "wrap_b", "kek_b_version", "error")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    WRAP_B_FIELD_NUMBER: _ClassVar[int]
    KEK_B_VERSION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    wrap_b: bytes
    kek_b_version: int
    error: str
    def __init__(self, record_id: _Optional[str] = ..., wrap_b: _Optional[bytes] = ..., kek_b_version: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class RewrapSharesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RewrapResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RewrapResult, _Mapping]]] = ...) -> None: ...

class SetAccessRequest(_message.Message):
    __slots__ = ("request_id", "subject_kind", "subject", "disabled", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subject_kind: str
    subject: str
    disabled: bool
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., subject_kind: _Optional[str] = ..., subject: _Optional[str] = ..., disabled: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class AccessRule(_message.Message):
    __slots__ = ("subject_kind", "subject", "disabled", "reason", "actor", "updated_at_ms")
    SUBJECT_KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    subject_kind: str
    subject: str
    disabled: bool
    reason: str
    actor: str
    updated_at_ms: int
    def __init__(self, subject_kind: _Optional[str] = ..., subject: _Optional[str] = ..., disabled: _Optional[bool] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ..., updated_at_ms: _Optional[int] = ...) -> None: ...

class ListAccessRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAccessResponse(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[AccessRule]
    def __init__(self, rules: _Optional[_Iterable[_Union[AccessRule, _Mapping]]] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionCount(_message.Message):
    __slots__ = ("kind", "version", "rows", "state", "sample_record_ids")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    version: int
    rows: int
    state: str
    sample_record_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[str] = ..., version: _Optional[int] = ..., rows: _Optional[int] = ..., state: _Optional[str] = ..., sample_record_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("rows", "versions", "unreadable_rows", "tampered_rows", "tampered_record_ids")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    UNREADABLE_ROWS_FIELD_NUMBER: _ClassVar[int]
    TAMPERED_ROWS_FIELD_NUMBER: _ClassVar[int]
    TAMPERED_RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    versions: _containers.RepeatedCompositeFieldContainer[VersionCount]
    unreadable_rows: int
    tampered_rows: int
    tampered_record_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rows: _Optional[int] = ..., versions: _Optional[_Iterable[_Union[VersionCount, _Mapping]]] = ..., unreadable_rows: _Optional[int] = ..., tampered_rows: _Optional[int] = ..., tampered_record_ids: _Optional[_Iterable[str]] = ...) -> None: ...
