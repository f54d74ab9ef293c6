"""OCPP 2.0.1 security (Part 2 A "Security", M "ISO 15118 CertificateManagement" for the
CSMS and manufacturer roots) on the pieces the 1.6 security extension already has.

Theory of operation: nothing here decides what 1.6 decides differently. The profile rules
(only upwards, prerequisites, pending credentials, fallback) are `security_profile.ProfileCore`;
the refusals are classified by `security_profile.classify`; the persisted profile state is the
same `security_state` table (`session_security.load_credentials` / `save_credentials`); the
certificates are one `certificates.CertificateStore` in the same state directory, with the
station key made once (0600). This module maps them onto 2.0.1's names:

- SecurityCtrlr.SecurityProfile (SetVariables, only upwards) and BasicAuthPassword
  (write-only, 16..40 characters; A01) go to the core; an accepted change reconnects once the
  SetVariablesResponse is out, and a failure with the new credentials falls back (A05-style).
- Profile 1 = Basic auth over ws://, 2 = Basic auth over wss:// with the CSMS certificate
  checked against the installed CSMSRootCertificates, 3 = wss:// with the station's client
  certificate, TLS 1.2+ with the whitepaper's suites (A00.FR.3xx / A00.FR.4xx).
- Security events are journaled under the shared (1.6) names; `event_name` gives the 2.0.1
  name the SecurityEventNotification carries (Part 2 appendix "Security events").
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from chargeport.security_log import security_event
from main_node.ocpp.certificates import (
    CSMS_ROOT,
    MANUFACTURER_ROOT,
    CertificateError,
    CertificateStore,
    load_chain,
    verify_chain,
)
from main_node.ocpp.security_profile import (
    FAILED_TO_AUTHENTICATE,
    INVALID_CP_CERTIFICATE,
    INVALID_CSMS_CERTIFICATE,
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
from main_node.ocpp.session_security import (
    basic_auth_header,
    csms_tls_context,
    load_credentials,
    save_credentials,
    security_dir,
)

__all__ = ["MAX_CERTIFICATES", "ROOT_TYPES_201", "Security201", "event_name"]

log = logging.getLogger(__name__)

MAX_CERTIFICATES = 10  # SecurityCtrlr.CertificateEntries is at most this
MAX_CHAIN_SIZE = 10000  # SecurityCtrlr.MaxCertificateChainSize
# A03: the station asks for a new certificate this long before its own expires (the spec
# leaves the moment to the station; no standard variable sets it).
RENEW_BEFORE_S = 30 * 24 * 3600

# InstallCertificateUseEnumType / GetCertificateIdUseEnumType -> the shared store's kinds.
ROOT_TYPES_201 = {
    "CSMSRootCertificate": CSMS_ROOT,
    "ManufacturerRootCertificate": MANUFACTURER_ROOT,
}
_TYPE_201 = {v: k for k, v in ROOT_TYPES_201.items()}

# The shared journal's 1.6 names -> 2.0.1 Part 2 appendix "Security events".
_EVENT_201 = {
    FAILED_TO_AUTHENTICATE: "FailedToAuthenticateAtCsms",
    INVALID_CSMS_CERTIFICATE: "InvalidCsmsCertificate",
    INVALID_CP_CERTIFICATE: "InvalidChargingStationCertificate",
}

SetStatus = Literal["Accepted", "Rejected"]


def event_name(kind: str) -> str:
    """The 2.0.1 name of a journaled security event."""
    return _EVENT_201.get(kind, kind)


class Security201:
    """Credentials, TLS settings and certificates of the 2.0.1 session (see the module text)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        url: str,
        station_id: str,
        password: str,
        ca_file: str,
        now: Callable[[], float],
        directory: Path | None = None,
    ) -> None:
        self._conn = conn
        self._url = url
        self._station_id = station_id
        self._ca_file = ca_file
        self._now = now
        self.store = CertificateStore(
            directory or security_dir(conn, station_id), max_certificates=MAX_CERTIFICATES
        )
        derived = Credentials(
            initial_profile(url, password, bool(self.store.client_chain())), password
        )
        committed, pending = load_credentials(conn, derived)
        self.core = ProfileCore(committed, pending)
        self.reconnect_due = False
        self.signed = asyncio.Event()  # set on an accepted CertificateSigned
        self._open = False
        self._warned_plain = False
        self._warned_certs: set[bytes] = set()

    # ------------------------------------------------------------ the profile

    @property
    def profile(self) -> int:
        return self.core.in_use().profile

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

    def prerequisites(self) -> Prerequisites:
        chain = self.store.client_chain()
        valid = bool(chain) and verify_chain(chain, self.csms_roots(), self._now()) is None
        return Prerequisites(csms_root=bool(self.csms_roots()), client_certificate=valid)

    def set_profile(self, value: str) -> SetStatus:
        """SetVariables SecurityCtrlr.SecurityProfile: only upwards, prerequisites installed."""
        status, effects = self.core.change_profile(value, self.prerequisites())
        self._apply(effects)
        return status

    def set_password(self, value: str) -> SetStatus:
        """SetVariables SecurityCtrlr.BasicAuthPassword (A01): used from a new connection,
        made once the SetVariablesResponse is out."""
        status, effects = self.core.change_key(value)
        self._apply(effects)
        if status == "Accepted" and self.profile in (1, 2):
            self.reconnect_due = True
        return status

    def take_reconnect(self) -> bool:
        """Whether the last change wants the connection closed (once)."""
        due, self.reconnect_due = self.reconnect_due, False
        return due

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Persist):
                save_credentials(self._conn, effect)
            elif isinstance(effect, Event):
                security_event(effect.kind, effect.detail)
            elif isinstance(effect, Reconnect):
                self.reconnect_due = True

    # ------------------------------------------------------------ the connection

    def url(self) -> str:
        return url_for(self.profile, self._url)

    def connect_kwargs(self) -> dict[str, Any]:
        """Basic auth header and TLS context of the next attempt (profiles 1..3)."""
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
                    "OCPP 2.0.1 security profile 1: the Basic auth password goes to %s in plain "
                    "text (use wss:// and profile 2 or 3)",
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
        reason = verify_chain([cert], [cert], self._now())
        fingerprint = cert.fingerprint(hashes.SHA256())
        if reason is not None and fingerprint not in self._warned_certs:
            self._warned_certs.add(fingerprint)
            security_event(INVALID_CP_CERTIFICATE, f"the station's client certificate: {reason}")

    def opened(self) -> None:
        """The websocket opened with the credentials of `core.in_use()`."""
        self._open = True
        self._apply(self.core.opened())

    def closed(self) -> None:
        self._open = False

    def failed(self, exc: BaseException) -> None:
        """An attempt that never opened: what it says about the credentials."""
        if self._open:
            return
        tls = self.url().startswith("wss://")
        failure, detail = classify(
            exc, tls=tls, client_certificate=tls and self.core.in_use().profile == 3
        )
        self._apply(self.core.failed(failure, detail))

    # ------------------------------------------------------------ certificates (M)

    def install(self, certificate_type: str, pem: str) -> str:
        """InstallCertificate (M05): CSMS and manufacturer roots; V2G / MO roots Rejected."""
        kind = ROOT_TYPES_201.get(certificate_type)
        if kind is None:
            return "Rejected"
        return self.store.install(kind, pem, self._now())

    def installed_ids(self, types: list[str] | None) -> list[dict[str, Any]]:
        """GetInstalledCertificateIds (M03): CertificateHashDataChainType of each root."""
        wanted = [ROOT_TYPES_201[t] for t in (types or list(ROOT_TYPES_201)) if t in ROOT_TYPES_201]
        return [
            {"certificate_type": _TYPE_201[item.kind], "certificate_hash_data": item.hash_data()}
            for kind in wanted
            for item in self.store.installed(kind)
        ]

    def delete(self, hash_data: dict[str, Any]) -> str:
        """DeleteCertificate (M04): NotFound, Accepted, or Failed for the last CSMS root the
        connection is checked with (deleting it would cut the station off)."""
        found = self.store.find(hash_data)
        if found is None:
            return "NotFound"
        if (
            found.kind == CSMS_ROOT
            and self.profile >= 2
            and len(self.store.installed(CSMS_ROOT)) == 1
            and not self.has_ca_file
        ):
            return "Failed"
        return "Accepted" if self.store.delete(found) else "Failed"

    def csr(self, organization: str) -> str:
        """A CSR of the station's key (A02.FR.02): CN = SecurityCtrlr.Identity, O =
        SecurityCtrlr.OrganizationName."""
        return self.store.csr(self._station_id, organization)

    def renewal_due(self) -> bool:
        """A03: the client certificate expires within `RENEW_BEFORE_S`: ask for a new one."""
        chain = self.store.client_chain()
        if not chain:
            return False
        return chain[0].not_valid_after_utc.timestamp() - self._now() < RENEW_BEFORE_S

    def accept_signed(self, chain: str, certificate_type: str | None) -> SetStatus:
        """CertificateSigned (A02.FR.05..): the chain must be for the station's key and chain
        to an installed CSMS root; kept for the next connection. A refusal is a security event
        (InvalidChargingStationCertificate)."""
        if certificate_type not in (None, "ChargingStationCertificate"):
            reason: str | None = f"{certificate_type} is not supported (no ISO 15118)"
        elif len(chain) > MAX_CHAIN_SIZE:
            reason = f"chain of {len(chain)} characters > {MAX_CHAIN_SIZE}"
        else:
            reason = self.store.check_signed(chain, self.csms_roots(), self._now())
        if reason is not None:
            security_event(INVALID_CP_CERTIFICATE, f"CertificateSigned refused: {reason}")
            return "Rejected"
        try:
            self.store.store_client_chain(chain)
        except (OSError, CertificateError) as exc:
            log.error("client certificate not stored: %s", exc)
            return "Rejected"
        self.signed.set()
        log.info("new client certificate stored; used from the next connection")
        return "Accepted"
