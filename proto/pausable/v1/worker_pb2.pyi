from pausable.v1 import operation_pb2 as _operation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_CONTINUE: _ClassVar[Decision]
    DECISION_PAUSE: _ClassVar[Decision]
    DECISION_CANCEL: _ClassVar[Decision]
    DECISION_STOP: _ClassVar[Decision]
DECISION_UNSPECIFIED: Decision
DECISION_CONTINUE: Decision
DECISION_PAUSE: Decision
DECISION_CANCEL: Decision
DECISION_STOP: Decision

class RegisterWorkflowsRequest(_message.Message):
    __slots__ = ("workflows", "worker")
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[_operation_pb2.Workflow]
    worker: str
    def __init__(self, workflows: _Optional[_Iterable[_Union[_operation_pb2.Workflow, _Mapping]]] = ..., worker: _Optional[str] = ...) -> None: ...

class RegisterWorkflowsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckpointRequest(_message.Message):
    __slots__ = ("operation_id", "step", "result_json", "attempt_id", "continued", "attempt", "step_token", "next_not_started", "in_step", "details_json", "member")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTINUED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STEP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NEXT_NOT_STARTED_FIELD_NUMBER: _ClassVar[int]
    IN_STEP_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    step: int
    result_json: str
    attempt_id: str
    continued: bool
    attempt: int
    step_token: str
    next_not_started: bool
    in_step: bool
    details_json: str
    member: int
    def __init__(self, operation_id: _Optional[str] = ..., step: _Optional[int] = ..., result_json: _Optional[str] = ..., attempt_id: _Optional[str] = ..., continued: _Optional[bool] = ..., attempt: _Optional[int] = ..., step_token: _Optional[str] = ..., next_not_started: _Optional[bool] = ..., in_step: _Optional[bool] = ..., details_json: _Optional[str] = ..., member: _Optional[int] = ...) -> None: ...

class CheckpointResponse(_message.Message):
    __slots__ = ("decision", "state")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    state: _operation_pb2.OperationState
    def __init__(self, decision: _Optional[_Union[Decision, str]] = ..., state: _Optional[_Union[_operation_pb2.OperationState, str]] = ...) -> None: ...

class ReportStepsRequest(_message.Message):
    __slots__ = ("steps",)
    STEPS_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[CheckpointRequest]
    def __init__(self, steps: _Optional[_Iterable[_Union[CheckpointRequest, _Mapping]]] = ...) -> None: ...

class ReportStepsResponse(_message.Message):
    __slots__ = ("recorded",)
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    def __init__(self, recorded: _Optional[int] = ...) -> None: ...

class ReportProgressRequest(_message.Message):
    __slots__ = ("operation_id", "step", "fraction", "message", "attempt", "step_token")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STEP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    step: int
    fraction: float
    message: str
    attempt: int
    step_token: str
    def __init__(self, operation_id: _Optional[str] = ..., step: _Optional[int] = ..., fraction: _Optional[float] = ..., message: _Optional[str] = ..., attempt: _Optional[int] = ..., step_token: _Optional[str] = ...) -> None: ...

class ReportProgressResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: _operation_pb2.OperationState
    def __init__(self, state: _Optional[_Union[_operation_pb2.OperationState, str]] = ...) -> None: ...

class FailOperationRequest(_message.Message):
    __slots__ = ("operation_id", "step", "error", "attempt", "step_token", "member")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STEP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    step: int
    error: _operation_pb2.OperationError
    attempt: int
    step_token: str
    member: int
    def __init__(self, operation_id: _Optional[str] = ..., step: _Optional[int] = ..., error: _Optional[_Union[_operation_pb2.OperationError, _Mapping]] = ..., attempt: _Optional[int] = ..., step_token: _Optional[str] = ..., member: _Optional[int] = ...) -> None: ...

class FailOperationResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: _operation_pb2.OperationState
    def __init__(self, state: _Optional[_Union[_operation_pb2.OperationState, str]] = ...) -> None: ...

class HeldStep(_message.Message):
    __slots__ = ("operation_id", "step", "attempt", "step_token", "member")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STEP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    step: int
    attempt: int
    step_token: str
    member: int
    def __init__(self, operation_id: _Optional[str] = ..., step: _Optional[int] = ..., attempt: _Optional[int] = ..., step_token: _Optional[str] = ..., member: _Optional[int] = ...) -> None: ...

class RenewLeasesRequest(_message.Message):
    __slots__ = ("worker", "steps")
    WORKER_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    worker: str
    steps: _containers.RepeatedCompositeFieldContainer[HeldStep]
    def __init__(self, worker: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[HeldStep, _Mapping]]] = ...) -> None: ...

class RenewLeasesResponse(_message.Message):
    __slots__ = ("renewed",)
    RENEWED_FIELD_NUMBER: _ClassVar[int]
    renewed: int
    def __init__(self, renewed: _Optional[int] = ...) -> None: ...

class SaveStepDetailsRequest(_message.Message):
    __slots__ = ("operation_id", "step", "attempt", "step_token", "details_json")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STEP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    step: int
    attempt: int
    step_token: str
    details_json: str
    def __init__(self, operation_id: _Optional[str] = ..., step: _Optional[int] = ..., attempt: _Optional[int] = ..., step_token: _Optional[str] = ..., details_json: _Optional[str] = ...) -> None: ...

class SaveStepDetailsResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: _operation_pb2.OperationState
    def __init__(self, state: _Optional[_Union[_operation_pb2.OperationState, str]] = ...) -> None: ...

class GetStepDetailsRequest(_message.Message):
    __slots__ = ("operation_id", "step", "step_token")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STEP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    step: int
    step_token: str
    def __init__(self, operation_id: _Optional[str] = ..., step: _Optional[int] = ..., step_token: _Optional[str] = ...) -> None: ...

class GetStepDetailsResponse(_message.Message):
    __slots__ = ("found", "details_json")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    found: bool
    details_json: str
    def __init__(self, found: _Optional[bool] = ..., details_json: _Optional[str] = ...) -> None: ...
