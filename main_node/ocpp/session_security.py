"""The session's half of the OCPP 1.6 security extension (OCA "Improved security for OCPP
1.6-J", edition 3): the websocket's credentials per security profile, the security keys, the
certificate store and the security-event forwarder.

`client.OcppSession` owns one `SessionSecurity`. It asks it for the URL and the `connect()`
arguments of each attempt, tells it whether the attempt opened or failed (the core in
`security_profile.py` decides what that means), registers the security handlers
(`security_handlers.py`) on each connection's charge point, and runs `async_forward_events`.

- Profile 1: Basic auth over ws:// (a warning, once, that the password travels in clear text).
- Profile 2: Basic auth over wss://, the CSMS certificate checked against the installed
  CentralSystemRootCertificates (and `ca_file` of the station config, when given).
- Profile 3: wss:// with the station's client certificate (its key made and kept on the main,
  0600) and no Basic auth.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sqlite3
import ssl
import tempfile
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from websockets.asyncio.client import ClientConnection

from chargeport.clock import Clock
from chargeport.port import ChargePort
from chargeport.security_log import security_event
from main_node.ocpp.certificates import (
    CSMS_ROOT,
    CertificateError,
    CertificateStore,
    load_chain,
    verify_chain,
)
from main_node.ocpp.config_keys import ChangeStatus, ConfigStore, KeySpec
from main_node.ocpp.db import transaction
from main_node.ocpp.meter_values import iso_time
from main_node.ocpp.security_events import SecurityEventJournal, SecurityLogHandler
from main_node.ocpp.security_profile import (
    INVALID_CP_CERTIFICATE,
    Credentials,
    Effect,
    Event,
    Persist,
    Prerequisites,
    ProfileCore,
    Reconnect,
    classify,
    initial_profile,
    url_for,
)
from main_node.ocpp.session_ops import Offline, wait_event
from main_node.ocpp.signed_firmware import SignedFirmware
from system_aggregator.api import StationSystem

__all__ = [
    "TLS12_CIPHERS",
    "SecurityHost",
    "SessionSecurity",
    "client_context",
    "load_credentials",
    "save_credentials",
    "security_dir",
]

log = logging.getLogger(__name__)

STARTUP = "StartupOfTheDevice"
_STATE = "CREATE TABLE IF NOT EXISTS security_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
MAX_CERTIFICATES = 10  # CertificateStoreMaxLength


class SecurityHost(Protocol):
    """What `SessionSecurity` needs of the session (client.OcppSession)."""

    ports: Mapping[int, ChargePort]
    config: ConfigStore
    clock: Clock
    system: StationSystem | None
    connected: asyncio.Event

    @property
    def online(self) -> bool: ...

    def now(self) -> float: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

    async def async_request(self, payload: Any) -> Any: ...

    async def async_trigger(self, message: str, connector_id: int | None) -> None: ...


# Whitepaper 1.6 ed. 3, §2.3 (profiles 2 and 3): TLS 1.2 or above; for TLS 1.2 only these
# suites (ECDHE with AES-GCM). TLS 1.3's suites are all AEAD and stay as OpenSSL offers them.
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"
)


def client_context() -> ssl.SSLContext:
    """The station's TLS client context before trust and certificate are loaded."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    return ctx


def basic_auth_header(station_id: str, key: str) -> dict[str, str]:
    """The HTTP Basic auth header of profiles 1 and 2 (user = the station's identity)."""
    token = base64.b64encode(f"{station_id}:{key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def csms_tls_context(
    store: CertificateStore, ca_file: str, *, client_certificate: bool
) -> ssl.SSLContext:
    """TLS to the CSMS, shared by the 1.6 and 2.0.1 edges: trust the installed CSMS roots (and
    `ca_file`), else the system's; present the station's certificate for profile 3."""
    ctx = client_context()
    roots = store.roots_pem(CSMS_ROOT)
    if roots:
        ctx.load_verify_locations(cadata=roots)
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    if not roots and not ca_file:
        ctx.load_default_certs()
    if client_certificate:
        ctx.load_cert_chain(store.cert_path, store.key_path)
    return ctx


def _security_dir(conn: sqlite3.Connection, station_id: str) -> Path:
    """`ocpp-security/` beside the station database (the state dir)."""
    for _, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main" and file:
            return Path(file).parent / "ocpp-security"
    return Path(tempfile.gettempdir()) / f"chargeport-ocpp-security-{station_id}"


def security_dir(conn: sqlite3.Connection, station_id: str) -> Path:
    """`ocpp-security/` beside the station database (the state dir); shared by the 1.6 and
    2.0.1 edges, so a station keeps its certificates whichever protocol it speaks."""
    return _security_dir(conn, station_id)


def load_credentials(
    conn: sqlite3.Connection, derived: Credentials
) -> tuple[Credentials, Credentials | None]:
    """The persisted committed and pending credentials (`derived` = the station config's);
    shared by the 1.6 and 2.0.1 edges."""
    conn.execute(_STATE)
    rows = dict(conn.execute("SELECT name, value FROM security_state").fetchall())
    if "profile" not in rows:
        return derived, None
    try:
        # A profile only goes up: the station config cannot lower one the CSMS raised.
        committed = Credentials(
            max(int(rows["profile"]), derived.profile), rows.get("key") or derived.key
        )
        pending = None
        if "pending_profile" in rows:
            pending = Credentials(int(rows["pending_profile"]), rows.get("pending_key", ""))
    except ValueError:
        log.error("stored security profile unreadable: the station config's is used")
        return derived, None
    return committed, pending


def save_credentials(conn: sqlite3.Connection, effect: Persist) -> None:
    """Persist a `Persist` effect of the profile core (shared by the 1.6 and 2.0.1 edges)."""
    values = {"profile": str(effect.committed.profile), "key": effect.committed.key}
    if effect.pending is not None:
        values["pending_profile"] = str(effect.pending.profile)
        values["pending_key"] = effect.pending.key
    try:
        with transaction(conn):
            conn.execute("DELETE FROM security_state")
            conn.executemany(
                "INSERT INTO security_state(name, value) VALUES (?, ?)", values.items()
            )
    except sqlite3.Error as exc:  # in force for this run; the file catches up next change
        log.error("security profile state not saved: %s", exc)


class _Key:
    """A KeyHook over a method pair (config_keys.KeyHook)."""

    def __init__(
        self, read: Callable[[], str | None], write: Callable[[str], ChangeStatus]
    ) -> None:
        self._read, self._write = read, write

    def read(self) -> str | None:
        return self._read()

    def write(self, value: str) -> ChangeStatus:
        return self._write(value)


class SessionSecurity:
    """Credentials, keys, certificates and security events of one OCPP session."""

    def __init__(
        self,
        host: SecurityHost,
        conn: sqlite3.Connection,
        *,
        url: str,
        station_id: str,
        password: str,
        ca_file: str,
        directory: Path | None = None,
    ) -> None:
        self.host = host
        self._conn = conn
        self._url = url
        self._station_id = station_id
        self._ca_file = ca_file
        self.store = CertificateStore(
            directory or _security_dir(conn, station_id), max_certificates=MAX_CERTIFICATES
        )
        self.events = SecurityEventJournal(conn)
        conn.execute(_STATE)
        has_cert = bool(self.store.client_chain())
        derived = Credentials(initial_profile(url, password, has_cert), password)
        committed, pending = self._load(derived)
        self.core = ProfileCore(committed, pending)
        self._reconnect_due = False
        self._ws: ClientConnection | None = None
        self._warned_plain = False
        self._warned_certs: set[bytes] = set()
        self._handler: SecurityLogHandler | None = None
        self._started = False
        self.certificate_signed = asyncio.Event()  # set on an accepted CertificateSigned
        self._signing = False
        self.firmware_job: SignedFirmware | None = None  # the SignedUpdateFirmware running
        self.firmware_status: tuple[str, int | None] = ("Idle", None)  # status, requestId
        self.log_status: tuple[str, int | None] = ("Idle", None)  # UploadLogStatus, requestId
        config = host.config
        profile_key = _Key(self._read_profile, self._write_profile)
        config.attach(KeySpec("SecurityProfile", "int", "0"), profile_key)
        config.attach(KeySpec("AuthorizationKey", "str", ""), _Key(lambda: None, self._write_key))
        config.attach(KeySpec("CpoName", "str", ""))
        config.attach(KeySpec("CertificateStoreMaxLength", "int", str(MAX_CERTIFICATES), True))
        config.attach(KeySpec("CertificateSignedMaxChainSize", "int", "10000", True))
        config.attach(KeySpec("AdditionalRootCertificateCheck", "bool", "false", True))
        config.attach(KeySpec("CertSigningWaitMinimum", "int", "60"))
        config.attach(KeySpec("CertSigningRepeatTimes", "int", "3"))

    # ------------------------------------------------------------ persisted state

    def _load(self, derived: Credentials) -> tuple[Credentials, Credentials | None]:
        return load_credentials(self._conn, derived)

    def _save(self, effect: Persist) -> None:
        save_credentials(self._conn, effect)

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Persist):
                self._save(effect)
            elif isinstance(effect, Event):
                security_event(effect.kind, effect.detail)
            elif isinstance(effect, Reconnect):
                self._reconnect_due = True

    # ------------------------------------------------------------ configuration keys

    @property
    def profile(self) -> int:
        return self.core.in_use().profile

    def _read_profile(self) -> str:
        return str(self.profile)

    def prerequisites(self) -> Prerequisites:
        chain = self.store.client_chain()
        valid = bool(chain) and verify_chain(chain, self.csms_roots(), self.host.now()) is None
        return Prerequisites(csms_root=bool(self.csms_roots()), client_certificate=valid)

    def _write_profile(self, value: str) -> ChangeStatus:
        status, effects = self.core.change_profile(value, self.prerequisites())
        self._apply(effects)
        return status

    def _write_key(self, value: str) -> ChangeStatus:
        status, effects = self.core.change_key(value)
        self._apply(effects)
        return status

    def after_change(self) -> None:
        """After a ChangeConfiguration.conf is out: reconnect when the profile went up."""
        if self._reconnect_due:
            self._reconnect_due = False
            ws = self._ws
            if ws is not None:
                self.host.spawn(self._close(ws))

    async def _close(self, ws: ClientConnection) -> None:
        log.info("security profile changed: reconnecting with profile %d", self.profile)
        await ws.close()

    # ------------------------------------------------------------ certificates

    def csms_roots(self) -> list[x509.Certificate]:
        roots = self.store.roots(CSMS_ROOT)
        if self._ca_file:
            try:
                roots += load_chain(Path(self._ca_file).read_text())
            except (OSError, CertificateError) as exc:
                log.warning("ca_file %s not usable: %s", self._ca_file, exc)
        return roots

    @property
    def has_ca_file(self) -> bool:
        return bool(self._ca_file)

    async def async_sign_certificate(self) -> None:
        """SignCertificate.req with a CSR of the station's key (whitepaper 1.6 ed. 3, §3.2);
        without a CertificateSigned within CertSigningWaitMinimum seconds it is sent again,
        the wait doubling each time, at most CertSigningRepeatTimes more times."""
        if self._signing:
            return  # one request at a time; the running one repeats itself
        self._signing = True
        try:
            wait = float(self.host.config.int_value("CertSigningWaitMinimum"))
            for _ in range(1 + self.host.config.int_value("CertSigningRepeatTimes")):
                csr = self.store.csr(self._station_id, self.host.config.value("CpoName"))
                self.certificate_signed.clear()
                try:
                    result = await self.host.async_request(call.SignCertificate(csr=csr))
                except (Offline, OCPPError, TimeoutError) as exc:
                    log.warning("SignCertificate not accepted: %s", exc)
                    return
                if getattr(result, "status", "") != "Accepted":
                    log.warning("SignCertificate: the CSMS answered %s", result.status)
                    return
                if await wait_event(self.certificate_signed, wait / self.host.clock.speed):
                    return
                wait *= 2
            log.warning("SignCertificate: no CertificateSigned came; giving up until triggered")
        finally:
            self._signing = False

    # ------------------------------------------------------------ the connection

    def url(self) -> str:
        return url_for(self.profile, self._url)

    def connect_kwargs(self) -> dict[str, Any]:
        """Basic auth header and TLS context for the next attempt (profiles 1..3)."""
        self.start_events()  # before the first attempt can fail
        creds = self.core.in_use()
        kwargs: dict[str, Any] = {}
        if creds.key and creds.profile != 3:
            kwargs["additional_headers"] = basic_auth_header(self._station_id, creds.key)
        url = self.url()
        if url.startswith("wss://"):
            kwargs["ssl"] = self._tls_context(creds.profile)
        elif not self._warned_plain:
            self._warned_plain = True
            if creds.key:
                log.warning(
                    "OCPP security profile 1: the Basic auth password goes to %s in plain text "
                    "(use wss:// and profile 2 or 3)",
                    url,
                )
            else:
                log.warning("OCPP connection to %s has no security profile: no TLS, no login", url)
        return kwargs

    def _tls_context(self, profile: int) -> ssl.SSLContext:
        chain = self.store.client_chain() if profile == 3 else []
        if chain:
            self._check_own_certificate(chain[0])
        return csms_tls_context(self.store, self._ca_file, client_certificate=bool(chain))

    def _check_own_certificate(self, cert: x509.Certificate) -> None:
        """An expired (or not yet valid) client certificate is a security event, once."""
        reason = verify_chain([cert], [cert], self.host.now())
        fingerprint = cert.fingerprint(hashes.SHA256())
        if reason is not None and fingerprint not in self._warned_certs:
            self._warned_certs.add(fingerprint)
            security_event(INVALID_CP_CERTIFICATE, f"the station's client certificate: {reason}")

    def attach(self, ws: ClientConnection) -> None:
        """The websocket opened with the credentials of `core.in_use()`."""
        self._ws = ws
        self._apply(self.core.opened())

    def detach(self) -> None:
        self._ws = None

    def connection_failed(self, exc: BaseException) -> None:
        """An attempt ended; only one that never opened says anything about credentials."""
        if self._ws is not None:
            return  # an open connection was lost: nothing about the credentials
        tls = self.url().startswith("wss://")
        in_use = self.core.in_use()
        failure, detail = classify(exc, tls=tls, client_certificate=tls and in_use.profile == 3)
        self._apply(self.core.failed(failure, detail))

    # ------------------------------------------------------------ security events

    def start_events(self) -> None:
        """Journal every `chargeport.security` record from now on; the first time, the
        station's start is one (whitepaper 1.6 ed. 3, Appendix 1: StartupOfTheDevice)."""
        if self._handler is None:
            self._handler = SecurityLogHandler(
                self.events, asyncio.get_running_loop(), self.host.now
            )
            self._handler.attach()
            if not self._started:
                self._started = True
                security_event(STARTUP, f"the main of station {self._station_id} started")

    def stop_events(self) -> None:
        if self._handler is not None:
            self._handler.detach()
            self._handler = None

    async def async_forward_events(self) -> None:
        """Journal security events while the session runs; send them in order while
        connected, each marked delivered once the CSMS answered."""
        self.start_events()
        try:
            await self._forward()
        finally:
            self.stop_events()

    async def _forward(self) -> None:
        while True:
            await self.host.connected.wait()
            try:
                entry = self.events.next()
            except sqlite3.Error as exc:
                log.warning("security event journal unreadable: %s", exc)
                entry = None
            if entry is None:
                self.events.added.clear()
                await wait_event(self.events.added, 60.0)
                continue
            payload = call.SecurityEventNotification(
                type=entry.kind, timestamp=iso_time(entry.at), tech_info=entry.detail or None
            )
            try:
                await self.host.async_request(payload)
            except Offline:
                await wait_event(self.events.added, 0.5)  # the connection is going; retry
                continue
            except (TimeoutError, OSError) as exc:
                log.info("SecurityEventNotification not answered: %s", exc)
                continue
            except OCPPError as exc:  # the CSMS refused it: sending it again will not help
                log.warning("SecurityEventNotification %s refused: %s", entry.kind, exc)
            self.events.delivered(entry.id)
