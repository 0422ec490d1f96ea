import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OperationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_STATE_UNSPECIFIED: _ClassVar[OperationState]
    OPERATION_STATE_PENDING: _ClassVar[OperationState]
    OPERATION_STATE_RUNNING: _ClassVar[OperationState]
    OPERATION_STATE_PAUSE_REQUESTED: _ClassVar[OperationState]
    OPERATION_STATE_PAUSED: _ClassVar[OperationState]
    OPERATION_STATE_CANCEL_REQUESTED: _ClassVar[OperationState]
    OPERATION_STATE_SUCCEEDED: _ClassVar[OperationState]
    OPERATION_STATE_FAILED: _ClassVar[OperationState]
    OPERATION_STATE_CANCELLED: _ClassVar[OperationState]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_CREATED: _ClassVar[EventType]
    EVENT_TYPE_STARTED: _ClassVar[EventType]
    EVENT_TYPE_STEP_COMPLETED: _ClassVar[EventType]
    EVENT_TYPE_PROGRESS: _ClassVar[EventType]
    EVENT_TYPE_PAUSE_REQUESTED: _ClassVar[EventType]
    EVENT_TYPE_PAUSED: _ClassVar[EventType]
    EVENT_TYPE_RESUMED: _ClassVar[EventType]
    EVENT_TYPE_CANCEL_REQUESTED: _ClassVar[EventType]
    EVENT_TYPE_CANCELLED: _ClassVar[EventType]
    EVENT_TYPE_SUCCEEDED: _ClassVar[EventType]
    EVENT_TYPE_FAILED: _ClassVar[EventType]
    EVENT_TYPE_STEP_RETRIED: _ClassVar[EventType]
    EVENT_TYPE_RETRIED: _ClassVar[EventType]
    EVENT_TYPE_STAGE_STARTED: _ClassVar[EventType]
    EVENT_TYPE_MEMBER_COMPLETED: _ClassVar[EventType]
    EVENT_TYPE_STAGE_COMPLETED: _ClassVar[EventType]

class PauseTimeoutAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAUSE_TIMEOUT_ACTION_UNSPECIFIED: _ClassVar[PauseTimeoutAction]
    PAUSE_TIMEOUT_ACTION_RESUME: _ClassVar[PauseTimeoutAction]
    PAUSE_TIMEOUT_ACTION_CANCEL: _ClassVar[PauseTimeoutAction]

class StepView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_VIEW_UNSPECIFIED: _ClassVar[StepView]
    STEP_VIEW_BASIC: _ClassVar[StepView]
    STEP_VIEW_FULL: _ClassVar[StepView]

class OperationView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_VIEW_UNSPECIFIED: _ClassVar[OperationView]
    OPERATION_VIEW_BASIC: _ClassVar[OperationView]
    OPERATION_VIEW_FULL: _ClassVar[OperationView]

class BulkActionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BULK_ACTION_KIND_UNSPECIFIED: _ClassVar[BulkActionKind]
    BULK_ACTION_KIND_PAUSE: _ClassVar[BulkActionKind]
    BULK_ACTION_KIND_RESUME: _ClassVar[BulkActionKind]
    BULK_ACTION_KIND_CANCEL: _ClassVar[BulkActionKind]

class BulkActionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BULK_ACTION_STATE_UNSPECIFIED: _ClassVar[BulkActionState]
    BULK_ACTION_STATE_RUNNING: _ClassVar[BulkActionState]
    BULK_ACTION_STATE_DONE: _ClassVar[BulkActionState]
OPERATION_STATE_UNSPECIFIED: OperationState
OPERATION_STATE_PENDING: OperationState
OPERATION_STATE_RUNNING: OperationState
OPERATION_STATE_PAUSE_REQUESTED: OperationState
OPERATION_STATE_PAUSED: OperationState
OPERATION_STATE_CANCEL_REQUESTED: OperationState
OPERATION_STATE_SUCCEEDED: OperationState
OPERATION_STATE_FAILED: OperationState
OPERATION_STATE_CANCELLED: OperationState
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_CREATED: EventType
EVENT_TYPE_STARTED: EventType
EVENT_TYPE_STEP_COMPLETED: EventType
EVENT_TYPE_PROGRESS: EventType
EVENT_TYPE_PAUSE_REQUESTED: EventType
EVENT_TYPE_PAUSED: EventType
EVENT_TYPE_RESUMED: EventType
EVENT_TYPE_CANCEL_REQUESTED: EventType
EVENT_TYPE_CANCELLED: EventType
EVENT_TYPE_SUCCEEDED: EventType
EVENT_TYPE_FAILED: EventType
EVENT_TYPE_STEP_RETRIED: EventType
EVENT_TYPE_RETRIED: EventType
EVENT_TYPE_STAGE_STARTED: EventType
EVENT_TYPE_MEMBER_COMPLETED: EventType
EVENT_TYPE_STAGE_COMPLETED: EventType
PAUSE_TIMEOUT_ACTION_UNSPECIFIED: PauseTimeoutAction
PAUSE_TIMEOUT_ACTION_RESUME: PauseTimeoutAction
PAUSE_TIMEOUT_ACTION_CANCEL: PauseTimeoutAction
STEP_VIEW_UNSPECIFIED: StepView
STEP_VIEW_BASIC: StepView
STEP_VIEW_FULL: StepView
OPERATION_VIEW_UNSPECIFIED: OperationView
OPERATION_VIEW_BASIC: OperationView
OPERATION_VIEW_FULL: OperationView
BULK_ACTION_KIND_UNSPECIFIED: BulkActionKind
BULK_ACTION_KIND_PAUSE: BulkActionKind
BULK_ACTION_KIND_RESUME: BulkActionKind
BULK_ACTION_KIND_CANCEL: BulkActionKind
BULK_ACTION_STATE_UNSPECIFIED: BulkActionState
BULK_ACTION_STATE_RUNNING: BulkActionState
BULK_ACTION_STATE_DONE: BulkActionState

class OperationError(_message.Message):
    __slots__ = ("code", "message", "step", "step_name", "step_number", "traceback", "member_index")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    STEP_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    MEMBER_INDEX_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    step: int
    step_name: str
    step_number: int
    traceback: str
    member_index: int
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., step: _Optional[int] = ..., step_name: _Optional[str] = ..., step_number: _Optional[int] = ..., traceback: _Optional[str] = ..., member_index: _Optional[int] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("id", "workflow", "state", "current_step", "total_steps", "current_step_name", "progress", "progress_message", "input", "result", "error", "requester", "labels", "create_time", "update_time", "end_time", "last_seq", "attempt", "lease_expire_time", "input_json", "result_json", "step_number", "parent_id", "forked_from_step", "pause_before_step", "deadline", "deadline_used", "deadline_time", "pause_timeout_time", "pause_on_timeout", "stage")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    STEP_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    FORKED_FROM_STEP_FIELD_NUMBER: _ClassVar[int]
    PAUSE_BEFORE_STEP_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_USED_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_TIME_FIELD_NUMBER: _ClassVar[int]
    PAUSE_TIMEOUT_TIME_FIELD_NUMBER: _ClassVar[int]
    PAUSE_ON_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    workflow: str
    state: OperationState
    current_step: int
    total_steps: int
    current_step_name: str
    progress: float
    progress_message: str
    input: _struct_pb2.Value
    result: _struct_pb2.Value
    error: OperationError
    requester: str
    labels: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    last_seq: int
    attempt: int
    lease_expire_time: _timestamp_pb2.Timestamp
    input_json: str
    result_json: str
    step_number: int
    parent_id: str
    forked_from_step: int
    pause_before_step: int
    deadline: _duration_pb2.Duration
    deadline_used: _duration_pb2.Duration
    deadline_time: _timestamp_pb2.Timestamp
    pause_timeout_time: _timestamp_pb2.Timestamp
    pause_on_timeout: PauseTimeoutAction
    stage: StageProgress
    def __init__(self, id: _Optional[str] = ..., workflow: _Optional[str] = ..., state: _Optional[_Union[OperationState, str]] = ..., current_step: _Optional[int] = ..., total_steps: _Optional[int] = ..., current_step_name: _Optional[str] = ..., progress: _Optional[float] = ..., progress_message: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., result: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., error: _Optional[_Union[OperationError, _Mapping]] = ..., requester: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seq: _Optional[int] = ..., attempt: _Optional[int] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., input_json: _Optional[str] = ..., result_json: _Optional[str] = ..., step_number: _Optional[int] = ..., parent_id: _Optional[str] = ..., forked_from_step: _Optional[int] = ..., pause_before_step: _Optional[int] = ..., deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., deadline_used: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., deadline_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pause_timeout_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pause_on_timeout: _Optional[_Union[PauseTimeoutAction, str]] = ..., stage: _Optional[_Union[StageProgress, _Mapping]] = ...) -> None: ...

class StageProgress(_message.Message):
    __slots__ = ("members_total", "members_done", "members_running")
    MEMBERS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_DONE_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    members_total: int
    members_done: int
    members_running: int
    def __init__(self, members_total: _Optional[int] = ..., members_done: _Optional[int] = ..., members_running: _Optional[int] = ...) -> None: ...

class StepRecord(_message.Message):
    __slots__ = ("kind", "step_number", "name", "attempt", "start_time", "end_time", "duration", "result_bytes", "result", "result_json", "previous_json", "plan_index")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[StepRecord.Kind]
        KIND_RESULT: _ClassVar[StepRecord.Kind]
        KIND_FAILED: _ClassVar[StepRecord.Kind]
        KIND_INPUT: _ClassVar[StepRecord.Kind]
    KIND_UNSPECIFIED: StepRecord.Kind
    KIND_RESULT: StepRecord.Kind
    KIND_FAILED: StepRecord.Kind
    KIND_INPUT: StepRecord.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    STEP_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    RESULT_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_JSON_FIELD_NUMBER: _ClassVar[int]
    PLAN_INDEX_FIELD_NUMBER: _ClassVar[int]
    kind: StepRecord.Kind
    step_number: int
    name: str
    attempt: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    result_bytes: int
    result: _struct_pb2.Value
    result_json: str
    previous_json: str
    plan_index: int
    def __init__(self, kind: _Optional[_Union[StepRecord.Kind, str]] = ..., step_number: _Optional[int] = ..., name: _Optional[str] = ..., attempt: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., result_bytes: _Optional[int] = ..., result: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., result_json: _Optional[str] = ..., previous_json: _Optional[str] = ..., plan_index: _Optional[int] = ...) -> None: ...

class OperationEvent(_message.Message):
    __slots__ = ("operation_id", "seq", "type", "time", "message", "operation", "actor", "reason")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    seq: int
    type: EventType
    time: _timestamp_pb2.Timestamp
    message: str
    operation: Operation
    actor: str
    reason: str
    def __init__(self, operation_id: _Optional[str] = ..., seq: _Optional[int] = ..., type: _Optional[_Union[EventType, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., operation: _Optional[_Union[Operation, _Mapping]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Workflow(_message.Message):
    __slots__ = ("name", "description", "steps", "input_schema", "register_time", "plan_json", "max_attempts")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    REGISTER_TIME_FIELD_NUMBER: _ClassVar[int]
    PLAN_JSON_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    steps: _containers.RepeatedScalarFieldContainer[str]
    input_schema: _struct_pb2.Value
    register_time: _timestamp_pb2.Timestamp
    plan_json: str
    max_attempts: int
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., steps: _Optional[_Iterable[str]] = ..., input_schema: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., register_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., plan_json: _Optional[str] = ..., max_attempts: _Optional[int] = ...) -> None: ...

class StartOperationRequest(_message.Message):
    __slots__ = ("workflow", "input", "request_id", "requester", "labels", "deadline")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    workflow: str
    input: _struct_pb2.Value
    request_id: str
    requester: str
    labels: _containers.ScalarMap[str, str]
    deadline: _duration_pb2.Duration
    def __init__(self, workflow: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., request_id: _Optional[str] = ..., requester: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class StartOperationResponse(_message.Message):
    __slots__ = ("operation",)
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    operation: Operation
    def __init__(self, operation: _Optional[_Union[Operation, _Mapping]] = ...) -> None: ...

class GetOperationRequest(_message.Message):
    __slots__ = ("operation_id", "step_view")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_VIEW_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    step_view: StepView
    def __init__(self, operation_id: _Optional[str] = ..., step_view: _Optional[_Union[StepView, str]] = ...) -> None: ...

class GetOperationResponse(_message.Message):
    __slots__ = ("operation", "steps", "forks")
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    FORKS_FIELD_NUMBER: _ClassVar[int]
    operation: Operation
    steps: _containers.RepeatedCompositeFieldContainer[StepRecord]
    forks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, operation: _Optional[_Union[Operation, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[StepRecord, _Mapping]]] = ..., forks: _Optional[_Iterable[str]] = ...) -> None: ...

class ListOperationsRequest(_message.Message):
    __slots__ = ("states", "workflow", "page_size", "page_token", "labels", "requester", "created_after", "created_before", "stuck", "view")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    STUCK_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[OperationState]
    workflow: str
    page_size: int
    page_token: str
    labels: _containers.ScalarMap[str, str]
    requester: str
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    stuck: bool
    view: OperationView
    def __init__(self, states: _Optional[_Iterable[_Union[OperationState, str]]] = ..., workflow: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., requester: _Optional[str] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stuck: _Optional[bool] = ..., view: _Optional[_Union[OperationView, str]] = ...) -> None: ...

class ListOperationsResponse(_message.Message):
    __slots__ = ("operations", "next_page_token", "events_cursor")
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EVENTS_CURSOR_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedCompositeFieldContainer[Operation]
    next_page_token: str
    events_cursor: str
    def __init__(self, operations: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., events_cursor: _Optional[str] = ...) -> None: ...

class PauseRequest(_message.Message):
    __slots__ = ("operation_id", "request_id", "reason", "before_step", "timeout", "on_timeout")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BEFORE_STEP_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ON_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    request_id: str
    reason: str
    before_step: int
    timeout: _duration_pb2.Duration
    on_timeout: PauseTimeoutAction
    def __init__(self, operation_id: _Optional[str] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ..., before_step: _Optional[int] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., on_timeout: _Optional[_Union[PauseTimeoutAction, str]] = ...) -> None: ...

class PauseResponse(_message.Message):
    __slots__ = ("operation",)
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    operation: Operation
    def __init__(self, operation: _Optional[_Union[Operation, _Mapping]] = ...) -> None: ...

class ResumeRequest(_message.Message):
    __slots__ = ("operation_id", "request_id", "reason", "input", "input_json")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    request_id: str
    reason: str
    input: _struct_pb2.Value
    input_json: str
    def __init__(self, operation_id: _Optional[str] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., input_json: _Optional[str] = ...) -> None: ...

class ResumeResponse(_message.Message):
    __slots__ = ("operation",)
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    operation: Operation
    def __init__(self, operation: _Optional[_Union[Operation, _Mapping]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("operation_id", "request_id", "reason", "force")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    request_id: str
    reason: str
    force: bool
    def __init__(self, operation_id: _Optional[str] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("operation",)
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    operation: Operation
    def __init__(self, operation: _Optional[_Union[Operation, _Mapping]] = ...) -> None: ...

class RetryRequest(_message.Message):
    __slots__ = ("operation_id", "request_id", "reason")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    request_id: str
    reason: str
    def __init__(self, operation_id: _Optional[str] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RetryResponse(_message.Message):
    __slots__ = ("operation",)
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    operation: Operation
    def __init__(self, operation: _Optional[_Union[Operation, _Mapping]] = ...) -> None: ...

class ForkRequest(_message.Message):
    __slots__ = ("operation_id", "from_step", "input", "input_json", "request_id", "reason", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_STEP_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    from_step: int
    input: _struct_pb2.Value
    input_json: str
    request_id: str
    reason: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, operation_id: _Optional[str] = ..., from_step: _Optional[int] = ..., input: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., input_json: _Optional[str] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ForkResponse(_message.Message):
    __slots__ = ("operation",)
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    operation: Operation
    def __init__(self, operation: _Optional[_Union[Operation, _Mapping]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("operation_id", "after_seq")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    after_seq: int
    def __init__(self, operation_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: OperationEvent
    def __init__(self, event: _Optional[_Union[OperationEvent, _Mapping]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("states", "workflow", "labels", "requester", "after_cursor")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[OperationState]
    workflow: str
    labels: _containers.ScalarMap[str, str]
    requester: str
    after_cursor: str
    def __init__(self, states: _Optional[_Iterable[_Union[OperationState, str]]] = ..., workflow: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., requester: _Optional[str] = ..., after_cursor: _Optional[str] = ...) -> None: ...

class WatchEventsResponse(_message.Message):
    __slots__ = ("event", "cursor")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    event: OperationEvent
    cursor: str
    def __init__(self, event: _Optional[_Union[OperationEvent, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("workflows",)
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[Workflow]
    def __init__(self, workflows: _Optional[_Iterable[_Union[Workflow, _Mapping]]] = ...) -> None: ...

class OperationSelector(_message.Message):
    __slots__ = ("states", "workflow", "labels", "requester", "created_after", "created_before")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[OperationState]
    workflow: str
    labels: _containers.ScalarMap[str, str]
    requester: str
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    def __init__(self, states: _Optional[_Iterable[_Union[OperationState, str]]] = ..., workflow: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., requester: _Optional[str] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BulkSkip(_message.Message):
    __slots__ = ("reason", "count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: str
    count: int
    def __init__(self, reason: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class BulkFailure(_message.Message):
    __slots__ = ("operation_id", "message")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    message: str
    def __init__(self, operation_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class BulkAction(_message.Message):
    __slots__ = ("id", "kind", "state", "matched", "done", "skipped", "failed", "skipped_reasons", "failures", "reason", "actor", "create_time", "update_time", "end_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_REASONS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: BulkActionKind
    state: BulkActionState
    matched: int
    done: int
    skipped: int
    failed: int
    skipped_reasons: _containers.RepeatedCompositeFieldContainer[BulkSkip]
    failures: _containers.RepeatedCompositeFieldContainer[BulkFailure]
    reason: str
    actor: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[BulkActionKind, str]] = ..., state: _Optional[_Union[BulkActionState, str]] = ..., matched: _Optional[int] = ..., done: _Optional[int] = ..., skipped: _Optional[int] = ..., failed: _Optional[int] = ..., skipped_reasons: _Optional[_Iterable[_Union[BulkSkip, _Mapping]]] = ..., failures: _Optional[_Iterable[_Union[BulkFailure, _Mapping]]] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BulkPauseRequest(_message.Message):
    __slots__ = ("operation_ids", "selector", "request_id", "reason")
    OPERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    operation_ids: _containers.RepeatedScalarFieldContainer[str]
    selector: OperationSelector
    request_id: str
    reason: str
    def __init__(self, operation_ids: _Optional[_Iterable[str]] = ..., selector: _Optional[_Union[OperationSelector, _Mapping]] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class BulkPauseResponse(_message.Message):
    __slots__ = ("bulk_action",)
    BULK_ACTION_FIELD_NUMBER: _ClassVar[int]
    bulk_action: BulkAction
    def __init__(self, bulk_action: _Optional[_Union[BulkAction, _Mapping]] = ...) -> None: ...

class BulkResumeRequest(_message.Message):
    __slots__ = ("operation_ids", "selector", "request_id", "reason")
    OPERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    operation_ids: _containers.RepeatedScalarFieldContainer[str]
    selector: OperationSelector
    request_id: str
    reason: str
    def __init__(self, operation_ids: _Optional[_Iterable[str]] = ..., selector: _Optional[_Union[OperationSelector, _Mapping]] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class BulkResumeResponse(_message.Message):
    __slots__ = ("bulk_action",)
    BULK_ACTION_FIELD_NUMBER: _ClassVar[int]
    bulk_action: BulkAction
    def __init__(self, bulk_action: _Optional[_Union[BulkAction, _Mapping]] = ...) -> None: ...

class BulkCancelRequest(_message.Message):
    __slots__ = ("operation_ids", "selector", "request_id", "reason")
    OPERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    operation_ids: _containers.RepeatedScalarFieldContainer[str]
    selector: OperationSelector
    request_id: str
    reason: str
    def __init__(self, operation_ids: _Optional[_Iterable[str]] = ..., selector: _Optional[_Union[OperationSelector, _Mapping]] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class BulkCancelResponse(_message.Message):
    __slots__ = ("bulk_action",)
    BULK_ACTION_FIELD_NUMBER: _ClassVar[int]
    bulk_action: BulkAction
    def __init__(self, bulk_action: _Optional[_Union[BulkAction, _Mapping]] = ...) -> None: ...

class GetBulkActionRequest(_message.Message):
    __slots__ = ("bulk_action_id",)
    BULK_ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    bulk_action_id: str
    def __init__(self, bulk_action_id: _Optional[str] = ...) -> None: ...

class GetBulkActionResponse(_message.Message):
    __slots__ = ("bulk_action",)
    BULK_ACTION_FIELD_NUMBER: _ClassVar[int]
    bulk_action: BulkAction
    def __init__(self, bulk_action: _Optional[_Union[BulkAction, _Mapping]] = ...) -> None: ...

class WatchBulkActionRequest(_message.Message):
    __slots__ = ("bulk_action_id",)
    BULK_ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    bulk_action_id: str
    def __init__(self, bulk_action_id: _Optional[str] = ...) -> None: ...

class WatchBulkActionResponse(_message.Message):
    __slots__ = ("bulk_action",)
    BULK_ACTION_FIELD_NUMBER: _ClassVar[int]
    bulk_action: BulkAction
    def __init__(self, bulk_action: _Optional[_Union[BulkAction, _Mapping]] = ...) -> None: ...
