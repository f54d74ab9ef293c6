"""The station PKI: one CA per station, a client certificate for the main, a server
certificate per satellite that names the satellite's serial (CN and SAN dNSName).

The main dials a satellite with `ssl_target_name_override = serial`, so TLS hostname
verification is the serial check: a satellite whose certificate names another serial is
refused during the handshake. The agent requires a client certificate from the station CA.

Layout of a PKI directory: ca.pem, ca.key, main.pem, main.key, satellite-<serial>.pem/.key.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chargeport.errors import ChargeportError

__all__ = [
    "CertPair",
    "PkiError",
    "ca_cert_path",
    "channel_credentials",
    "channel_options",
    "init_pki",
    "issue_satellite",
    "main_pair",
    "satellite_pair",
    "server_credentials",
    "write_secret",
]

_SERIAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")  # must be a valid DNS label


class PkiError(ChargeportError):
    """A PKI file is missing or a serial cannot be put into a certificate."""


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes]:
        """(certificate PEM, private key PEM); `PkiError` naming the missing file."""
        try:
            return self.cert.read_bytes(), self.key.read_bytes()
        except FileNotFoundError as exc:
            raise PkiError(
                f"{exc.filename}: missing; create it with `chargeport pki init`"
            ) from None


def ca_cert_path(directory: str | Path) -> Path:
    return Path(directory) / "ca.pem"


def main_pair(directory: str | Path) -> CertPair:
    d = Path(directory)
    return CertPair(d / "main.pem", d / "main.key")


def satellite_pair(directory: str | Path, serial: str) -> CertPair:
    d = Path(directory)
    return CertPair(d / f"satellite-{serial}.pem", d / f"satellite-{serial}.key")


# ------------------------------------------------------------------ issuing


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def write_secret(path: str | Path, data: bytes | str) -> None:
    """Write a file only its owner can read (0600): keys, configs holding passwords.

    The bytes go to a temporary file created 0600 in the same directory, then replace `path`
    atomically: the secret is never readable by others, not even for a moment, and an existing
    0644 file is not reused with its old mode."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # whatever the umask said
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_secret(path, pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, station_id: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, station_id),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_pem, key_pem = CertPair(directory / "ca.pem", directory / "ca.key").read()
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{directory / 'ca.key'}: expected an EC private key")
    return x509.load_pem_x509_certificate(cert_pem), key


def _make_ca(directory: Path, station_id: str, days: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"{station_id} station CA", station_id)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(directory / "ca.key", key)
    _write_cert(directory / "ca.pem", cert)


def _issue(directory: Path, pair: CertPair, cn: str, *, server: bool, days: int) -> None:
    ca_cert, ca_key = _load_ca(directory)
    station_id = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, str(station_id)))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pair.key, key)
    _write_cert(pair.cert, cert)


def issue_satellite(directory: str | Path, serial: str, *, days: int = 3650) -> CertPair:
    """A server certificate for `serial`, signed by the directory's station CA."""
    if not _SERIAL_RE.match(serial):
        raise PkiError(f"satellite serial {serial!r}: use letters, digits and '-' (max 63)")
    d = Path(directory)
    pair = satellite_pair(d, serial)
    _issue(d, pair, serial, server=True, days=days)
    return pair


def init_pki(
    directory: str | Path,
    station_id: str,
    satellites: Sequence[str],
    *,
    main_name: str = "main",
    days: int = 3650,
    force: bool = False,
) -> list[Path]:
    """Create the CA (unless present), the main's and each satellite's certificate.

    Existing files are kept unless `force`; returns the files written.
    """
    d = Path(directory)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    written: list[Path] = []
    if force or not (d / "ca.pem").exists():
        _make_ca(d, station_id, days)
        written += [d / "ca.pem", d / "ca.key"]
        force = True  # every certificate must come from the new CA
    mp = main_pair(d)
    if force or not mp.cert.exists():
        _issue(d, mp, main_name, server=False, days=days)
        written += [mp.cert, mp.key]
    for serial in satellites:
        sp = satellite_pair(d, serial)
        if force or not sp.cert.exists():
            issue_satellite(d, serial, days=days)
            written += [sp.cert, sp.key]
    return written


# ------------------------------------------------------------------ gRPC credentials


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(f"{path}: missing; create it with `chargeport pki init`") from None


def server_credentials(directory: str | Path, serial: str) -> grpc.ServerCredentials:
    """The agent's TLS: its serial's certificate; clients must present a station-CA cert."""
    cert, key = satellite_pair(directory, serial).read()
    return grpc.ssl_server_credentials(
        [(key, cert)],
        root_certificates=_read(ca_cert_path(directory)),
        require_client_auth=True,
    )


def channel_credentials(directory: str | Path) -> grpc.ChannelCredentials:
    """The main's TLS: trusts only the station CA, presents the main certificate."""
    cert, key = main_pair(directory).read()
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_cert_path(directory)),
        private_key=key,
        certificate_chain=cert,
    )


def channel_options(serial: str) -> list[tuple[str, str]]:
    """Channel options that make TLS verify the satellite's certificate names `serial`."""
    return [("grpc.ssl_target_name_override", serial)]
