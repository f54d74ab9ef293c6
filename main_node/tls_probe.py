"""Why a satellite's TLS handshake failed, in words a person can act on.

gRPC reports a failed mTLS handshake as UNAVAILABLE with C-core text ("Ssl handshake failed",
"Peer name ... is not in peer certificate") and retries every second. When that happens the
link asks this module once: `probe_peer` repeats the handshake with Python's `ssl` (presenting
the main's certificate, as gRPC does, but without verifying) to get the satellite's
certificate, and `explain_certificate`, a pure function of the certificate, the station CA,
the expected serial and `now`, names the cause:

    satellite at 10.0.0.12:50051 presented a certificate for SAT-0001, expected SAT-0002
    satellite at 10.0.0.12:50051: certificate not signed by the station CA (pki/ca.pem)
    satellite at 10.0.0.12:50051: certificate expired on 2026-01-31 00:00 UTC
"""

from __future__ import annotations

import datetime
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from chargeport.pki import ca_cert_path, main_pair

__all__ = ["explain_certificate", "looks_like_tls_failure", "probe_peer"]

# Fragments of gRPC C-core's texts for a refused TLS handshake (any version seen so far) ...
_TLS_MARKERS = ("ssl", "handshake", "certificate", "peer name", "tls", "verification")
# ... unless the transport itself broke during it: a cut cable or a proxy that drops the
# connection also fails "the handshake", and must not be reported as a certificate problem.
_TRANSPORT_MARKERS = ("connection reset", "socket closed", "connection refused", "timed out", "eof")


def looks_like_tls_failure(details: str) -> bool:
    """True when a gRPC error's details point at the TLS handshake, not the network."""
    text = details.lower()
    if any(marker in text for marker in _TRANSPORT_MARKERS):
        return False
    return any(marker in text for marker in _TLS_MARKERS)


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = [str(n) for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names or cns


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _when(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def explain_certificate(
    cert: x509.Certificate,
    ca: x509.Certificate,
    *,
    serial: str,
    now: datetime.datetime,
    where: str,
    ca_path: str,
) -> str | None:
    """The first reason the main refuses `cert` for satellite `serial`, or None if it is fine.

    Order: trust first (a foreign certificate's name and dates mean nothing), then dates, then
    the serial, which is the satellite's identity (chargeport.pki)."""
    if not _issued_by(cert, ca):
        return f"satellite at {where}: certificate not signed by the station CA ({ca_path})"
    if cert.not_valid_after_utc < now:
        return f"satellite at {where}: certificate expired on {_when(cert.not_valid_after_utc)}"
    if cert.not_valid_before_utc > now:
        return (
            f"satellite at {where}: certificate not valid before "
            f"{_when(cert.not_valid_before_utc)} (check the board clocks)"
        )
    names = _names(cert)
    if serial not in names:
        shown = ", ".join(names) or "no name"
        return f"satellite at {where} presented a certificate for {shown}, expected {serial}"
    return None


def probe_peer(
    host: str,
    port: int,
    *,
    serial: str,
    pki_dir: str | Path,
    timeout_s: float = 3.0,
    now: datetime.datetime | None = None,
) -> str | None:
    """Handshake with the satellite once (blocking: run it in a thread) and explain a refusal.

    None when the certificate is acceptable or the peer could not be reached (then the network,
    not TLS, is the problem and the caller's own message stands)."""
    where = f"{host}:{port}"
    ca_path = ca_cert_path(pki_dir)
    try:
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    except (OSError, ValueError) as exc:
        return f"station CA {ca_path} unreadable: {exc}"
    pair = main_pair(pki_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we want to see the certificate, not trust it
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(pair.cert, pair.key)
    except (OSError, ssl.SSLError) as exc:
        return f"this main's certificate {pair.cert} unusable: {exc}"
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=serial) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLError as exc:
        if "ALERT" not in str(exc.reason or "").upper():
            return None  # the connection broke mid-handshake (network), no refusal was sent
        return (
            f"satellite at {where} refused this main's certificate ({exc.reason}): the main "
            "and the satellite must hold certificates from the same `chargeport pki init`"
        )
    except OSError:
        return None
    if der is None:
        return f"satellite at {where} presented no certificate"
    cert = x509.load_der_x509_certificate(der)
    return explain_certificate(
        cert,
        ca,
        serial=serial,
        now=now or datetime.datetime.now(datetime.UTC),
        where=where,
        ca_path=str(ca_path),
    )
