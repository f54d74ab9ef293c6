from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CpState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CP_STATE_UNSPECIFIED: _ClassVar[CpState]
    CP_STATE_A: _ClassVar[CpState]
    CP_STATE_B: _ClassVar[CpState]
    CP_STATE_C: _ClassVar[CpState]
    CP_STATE_D: _ClassVar[CpState]
    CP_STATE_E: _ClassVar[CpState]
    CP_STATE_F: _ClassVar[CpState]
CP_STATE_UNSPECIFIED: CpState
CP_STATE_A: CpState
CP_STATE_B: CpState
CP_STATE_C: CpState
CP_STATE_D: CpState
CP_STATE_E: CpState
CP_STATE_F: CpState

class PortDescription(_message.Message):
    __slots__ = ("connector", "max_current_a", "phases", "connector_type")
    CONNECTOR_FIELD_NUMBER: _ClassVar[int]
    MAX_CURRENT_A_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_TYPE_FIELD_NUMBER: _ClassVar[int]
    connector: int
    max_current_a: float
    phases: int
    connector_type: str
    def __init__(self, connector: _Optional[int] = ..., max_current_a: _Optional[float] = ..., phases: _Optional[int] = ..., connector_type: _Optional[str] = ...) -> None: ...

class HelloRequest(_message.Message):
    __slots__ = ("station_id", "main_boot_id", "protocol_version", "liveness_s")
    STATION_ID_FIELD_NUMBER: _ClassVar[int]
    MAIN_BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_S_FIELD_NUMBER: _ClassVar[int]
    station_id: str
    main_boot_id: str
    protocol_version: int
    liveness_s: float
    def __init__(self, station_id: _Optional[str] = ..., main_boot_id: _Optional[str] = ..., protocol_version: _Optional[int] = ..., liveness_s: _Optional[float] = ...) -> None: ...

class HelloResponse(_message.Message):
    __slots__ = ("serial", "satellite_boot_id", "firmware_version", "port", "session_id", "protocol_version", "last_seq", "resumed", "grace_period_s", "liveness_s", "meter_public_key", "journal")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    SATELLITE_BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_S_FIELD_NUMBER: _ClassVar[int]
    METER_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_FIELD_NUMBER: _ClassVar[int]
    serial: str
    satellite_boot_id: str
    firmware_version: str
    port: PortDescription
    session_id: str
    protocol_version: int
    last_seq: int
    resumed: bool
    grace_period_s: float
    liveness_s: float
    meter_public_key: str
    journal: bool
    def __init__(self, serial: _Optional[str] = ..., satellite_boot_id: _Optional[str] = ..., firmware_version: _Optional[str] = ..., port: _Optional[_Union[PortDescription, _Mapping]] = ..., session_id: _Optional[str] = ..., protocol_version: _Optional[int] = ..., last_seq: _Optional[int] = ..., resumed: _Optional[bool] = ..., grace_period_s: _Optional[float] = ..., liveness_s: _Optional[float] = ..., meter_public_key: _Optional[str] = ..., journal: _Optional[bool] = ...) -> None: ...

class ReadyRequest(_message.Message):
    __slots__ = ("session_id", "disabled")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    disabled: bool
    def __init__(self, session_id: _Optional[str] = ..., disabled: _Optional[bool] = ...) -> None: ...

class ReadyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EventsRequest(_message.Message):
    __slots__ = ("session_id", "after_seq", "snapshot")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    after_seq: int
    snapshot: bool
    def __init__(self, session_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., snapshot: _Optional[bool] = ...) -> None: ...

class TransactionData(_message.Message):
    __slots__ = ("transaction_id", "id_tag", "meter_wh", "reservation_id", "stop_reason", "signed_meter")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ID_TAG_FIELD_NUMBER: _ClassVar[int]
    METER_WH_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    SIGNED_METER_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    id_tag: str
    meter_wh: float
    reservation_id: int
    stop_reason: str
    signed_meter: str
    def __init__(self, transaction_id: _Optional[str] = ..., id_tag: _Optional[str] = ..., meter_wh: _Optional[float] = ..., reservation_id: _Optional[int] = ..., stop_reason: _Optional[str] = ..., signed_meter: _Optional[str] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ("type", "session_id", "transaction")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    type: str
    session_id: str
    transaction: TransactionData
    def __init__(self, type: _Optional[str] = ..., session_id: _Optional[str] = ..., transaction: _Optional[_Union[TransactionData, _Mapping]] = ...) -> None: ...

class MeterValue(_message.Message):
    __slots__ = ("energy_wh", "power_w", "voltage_v", "current_a", "frequency_hz", "temperature_c", "power_factor")
    ENERGY_WH_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    VOLTAGE_V_FIELD_NUMBER: _ClassVar[int]
    CURRENT_A_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_HZ_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_C_FIELD_NUMBER: _ClassVar[int]
    POWER_FACTOR_FIELD_NUMBER: _ClassVar[int]
    energy_wh: float
    power_w: float
    voltage_v: _containers.RepeatedScalarFieldContainer[float]
    current_a: _containers.RepeatedScalarFieldContainer[float]
    frequency_hz: float
    temperature_c: float
    power_factor: float
    def __init__(self, energy_wh: _Optional[float] = ..., power_w: _Optional[float] = ..., voltage_v: _Optional[_Iterable[float]] = ..., current_a: _Optional[_Iterable[float]] = ..., frequency_hz: _Optional[float] = ..., temperature_c: _Optional[float] = ..., power_factor: _Optional[float] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_current_a", "phases")
    MAX_CURRENT_A_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    max_current_a: float
    phases: int
    def __init__(self, max_current_a: _Optional[float] = ..., phases: _Optional[int] = ...) -> None: ...

class PortError(_message.Message):
    __slots__ = ("code", "message", "active")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    active: bool
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("status", "transaction", "last_seq")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    status: PortStatus
    transaction: TransactionData
    last_seq: int
    def __init__(self, status: _Optional[_Union[PortStatus, _Mapping]] = ..., transaction: _Optional[_Union[TransactionData, _Mapping]] = ..., last_seq: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("seq", "timestamp", "session", "cp_state", "meter", "limits", "error", "enabled", "heartbeat", "snapshot", "contested")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    CP_STATE_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CONTESTED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    timestamp: float
    session: SessionEvent
    cp_state: CpState
    meter: MeterValue
    limits: Limits
    error: PortError
    enabled: bool
    heartbeat: Heartbeat
    snapshot: Snapshot
    contested: Contested
    def __init__(self, seq: _Optional[int] = ..., timestamp: _Optional[float] = ..., session: _Optional[_Union[SessionEvent, _Mapping]] = ..., cp_state: _Optional[_Union[CpState, str]] = ..., meter: _Optional[_Union[MeterValue, _Mapping]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., error: _Optional[_Union[PortError, _Mapping]] = ..., enabled: _Optional[bool] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., contested: _Optional[_Union[Contested, _Mapping]] = ...) -> None: ...

class Contested(_message.Message):
    __slots__ = ("station_id", "main_boot_id", "address")
    STATION_ID_FIELD_NUMBER: _ClassVar[int]
    MAIN_BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    station_id: str
    main_boot_id: str
    address: str
    def __init__(self, station_id: _Optional[str] = ..., main_boot_id: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Authorize(_message.Message):
    __slots__ = ("id_tag", "reservation_id")
    ID_TAG_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    id_tag: str
    reservation_id: int
    def __init__(self, id_tag: _Optional[str] = ..., reservation_id: _Optional[int] = ...) -> None: ...

class StopTransaction(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class SetLimit(_message.Message):
    __slots__ = ("amps", "phases", "valid_for_s")
    AMPS_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    VALID_FOR_S_FIELD_NUMBER: _ClassVar[int]
    amps: float
    phases: int
    valid_for_s: float
    def __init__(self, amps: _Optional[float] = ..., phases: _Optional[int] = ..., valid_for_s: _Optional[float] = ...) -> None: ...

class Reserve(_message.Message):
    __slots__ = ("reservation_id", "id_tag", "expiry")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    ID_TAG_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_FIELD_NUMBER: _ClassVar[int]
    reservation_id: int
    id_tag: str
    expiry: float
    def __init__(self, reservation_id: _Optional[int] = ..., id_tag: _Optional[str] = ..., expiry: _Optional[float] = ...) -> None: ...

class CancelReservation(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: int
    def __init__(self, reservation_id: _Optional[int] = ...) -> None: ...

class CommandRequest(_message.Message):
    __slots__ = ("session_id", "connector", "correlation_id", "enable", "disable", "authorize", "withdraw_authorization", "pause", "resume", "stop_transaction", "set_limit", "force_unlock", "reserve", "cancel_reservation", "get_status", "heartbeat")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    ENABLE_FIELD_NUMBER: _ClassVar[int]
    DISABLE_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZE_FIELD_NUMBER: _ClassVar[int]
    WITHDRAW_AUTHORIZATION_FIELD_NUMBER: _ClassVar[int]
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    STOP_TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    SET_LIMIT_FIELD_NUMBER: _ClassVar[int]
    FORCE_UNLOCK_FIELD_NUMBER: _ClassVar[int]
    RESERVE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_RESERVATION_FIELD_NUMBER: _ClassVar[int]
    GET_STATUS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    connector: int
    correlation_id: int
    enable: Empty
    disable: Empty
    authorize: Authorize
    withdraw_authorization: Empty
    pause: Empty
    resume: Empty
    stop_transaction: StopTransaction
    set_limit: SetLimit
    force_unlock: Empty
    reserve: Reserve
    cancel_reservation: CancelReservation
    get_status: Empty
    heartbeat: Empty
    def __init__(self, session_id: _Optional[str] = ..., connector: _Optional[int] = ..., correlation_id: _Optional[int] = ..., enable: _Optional[_Union[Empty, _Mapping]] = ..., disable: _Optional[_Union[Empty, _Mapping]] = ..., authorize: _Optional[_Union[Authorize, _Mapping]] = ..., withdraw_authorization: _Optional[_Union[Empty, _Mapping]] = ..., pause: _Optional[_Union[Empty, _Mapping]] = ..., resume: _Optional[_Union[Empty, _Mapping]] = ..., stop_transaction: _Optional[_Union[StopTransaction, _Mapping]] = ..., set_limit: _Optional[_Union[SetLimit, _Mapping]] = ..., force_unlock: _Optional[_Union[Empty, _Mapping]] = ..., reserve: _Optional[_Union[Reserve, _Mapping]] = ..., cancel_reservation: _Optional[_Union[CancelReservation, _Mapping]] = ..., get_status: _Optional[_Union[Empty, _Mapping]] = ..., heartbeat: _Optional[_Union[Empty, _Mapping]] = ...) -> None: ...

class PortStatus(_message.Message):
    __slots__ = ("cp_state", "enabled", "session_state", "session_id", "transaction_id", "meter", "limits", "errors", "reservation_id")
    CP_STATE_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    SESSION_STATE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    cp_state: CpState
    enabled: bool
    session_state: str
    session_id: str
    transaction_id: str
    meter: MeterValue
    limits: Limits
    errors: _containers.RepeatedCompositeFieldContainer[PortError]
    reservation_id: int
    def __init__(self, cp_state: _Optional[_Union[CpState, str]] = ..., enabled: _Optional[bool] = ..., session_state: _Optional[str] = ..., session_id: _Optional[str] = ..., transaction_id: _Optional[str] = ..., meter: _Optional[_Union[MeterValue, _Mapping]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., errors: _Optional[_Iterable[_Union[PortError, _Mapping]]] = ..., reservation_id: _Optional[int] = ...) -> None: ...

class CommandReply(_message.Message):
    __slots__ = ("correlation_id", "code", "message", "status")
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    correlation_id: int
    code: int
    message: str
    status: PortStatus
    def __init__(self, correlation_id: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., status: _Optional[_Union[PortStatus, _Mapping]] = ...) -> None: ...

class BoardInfo(_message.Message):
    __slots__ = ("serial", "role", "firmware_version", "boot_id", "boot_reason", "active_slot", "time")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    BOOT_REASON_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SLOT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    serial: str
    role: str
    firmware_version: str
    boot_id: str
    boot_reason: str
    active_slot: str
    time: float
    def __init__(self, serial: _Optional[str] = ..., role: _Optional[str] = ..., firmware_version: _Optional[str] = ..., boot_id: _Optional[str] = ..., boot_reason: _Optional[str] = ..., active_slot: _Optional[str] = ..., time: _Optional[float] = ...) -> None: ...

class FirmwareChunk(_message.Message):
    __slots__ = ("total_size", "data")
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    total_size: int
    data: bytes
    def __init__(self, total_size: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class FirmwareProgress(_message.Message):
    __slots__ = ("stage", "received", "total", "version", "message")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    stage: str
    received: int
    total: int
    version: str
    message: str
    def __init__(self, stage: _Optional[str] = ..., received: _Optional[int] = ..., total: _Optional[int] = ..., version: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class FirmwareAction(_message.Message):
    __slots__ = ("action",)
    ACTION_FIELD_NUMBER: _ClassVar[int]
    action: str
    def __init__(self, action: _Optional[str] = ...) -> None: ...

class LogRequest(_message.Message):
    __slots__ = ("start", "stop")
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    start: float
    stop: float
    def __init__(self, start: _Optional[float] = ..., stop: _Optional[float] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("name", "data", "last")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    name: str
    data: bytes
    last: bool
    def __init__(self, name: _Optional[str] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class ResetRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class SetTimeRequest(_message.Message):
    __slots__ = ("time",)
    TIME_FIELD_NUMBER: _ClassVar[int]
    time: float
    def __init__(self, time: _Optional[float] = ...) -> None: ...

class SetTimeReply(_message.Message):
    __slots__ = ("offset_s",)
    OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    offset_s: float
    def __init__(self, offset_s: _Optional[float] = ...) -> None: ...
