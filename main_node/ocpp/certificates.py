"""The station's certificates for the OCPP 1.6 security extension (OCA "Improved security for
OCPP 1.6-J", edition 3): installed root certificates, the station's own key and client
certificate, chain and firmware-signature checks.

- Root certificates (`CentralSystemRootCertificate`, `ManufacturerRootCertificate`) are PEM files
  under `<dir>/<type>/<sha256>.pem`, identified to the CSMS by their CertificateHashData (the
  RFC 6960 CertID fields: hashes of the issuer's DER name and public key, and the serial).
- The station's private key is made on the main the first time it is needed and never leaves
  it (`station.key`, 0600 via `chargeport.pki.write_secret`); SignCertificate carries a CSR made
  from it, CertificateSigned stores the chain as `station.pem` once it checks out.
- `verify_chain` and `verify_firmware_signature` are pure checks with `now` passed in.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from chargeport.pki import write_secret
from main_node.errors import MainNodeError

__all__ = [
    "CSMS_ROOT",
    "MANUFACTURER_ROOT",
    "ROOT_TYPES",
    "CertificateError",
    "CertificateStore",
    "hash_data",
    "load_chain",
    "verify_chain",
    "verify_firmware_signature",
]

CSMS_ROOT = "CentralSystemRootCertificate"
MANUFACTURER_ROOT = "ManufacturerRootCertificate"
ROOT_TYPES = (CSMS_ROOT, MANUFACTURER_ROOT)
RootType = Literal["CentralSystemRootCertificate", "ManufacturerRootCertificate"]

MAX_CHAIN = 5  # certificates in one PEM a CSMS sends (CertificateSigned, signingCertificate)
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "SHA256": hashes.SHA256(),
    "SHA384": hashes.SHA384(),
    "SHA512": hashes.SHA512(),
}


class CertificateError(MainNodeError, ValueError):
    """A certificate (or chain, or signature) that cannot be used; the message says why."""


def load_chain(pem: str) -> list[x509.Certificate]:
    """The certificates of a PEM text, leaf first; `CertificateError` when there are none."""
    try:
        chain = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate: {exc}") from None
    if not chain:
        raise CertificateError("no certificate in the PEM text")
    if len(chain) > MAX_CHAIN:
        raise CertificateError(f"{len(chain)} certificates: at most {MAX_CHAIN}")
    return chain


def hash_data(cert: x509.Certificate, issuer: x509.Certificate, algorithm: str) -> dict[str, str]:
    """CertificateHashData of `cert` (whitepaper 1.6 ed. 3, §3.1.1; RFC 6960 CertID)."""
    req = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, _HASHES.get(algorithm, hashes.SHA256()))
        .build()
    )
    return {
        "hash_algorithm": algorithm,
        "issuer_name_hash": req.issuer_name_hash.hex(),
        "issuer_key_hash": req.issuer_key_hash.hex(),
        "serial_number": format(req.serial_number, "x"),
    }


def _valid_at(cert: x509.Certificate, now: datetime.datetime) -> str | None:
    if now < cert.not_valid_before_utc:
        return f"{cert.subject.rfc4514_string()} is not valid before {cert.not_valid_before_utc}"
    if now > cert.not_valid_after_utc:
        return f"{cert.subject.rfc4514_string()} expired on {cert.not_valid_after_utc}"
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def verify_chain(
    chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate], now: float
) -> str | None:
    """Why `chain` (leaf first) does not chain to one of `roots` at `now`; None when it does.

    Each certificate must be within its dates and be signed by the next; the last must be
    signed by a root (or be one); every issuer must be a CA.
    """
    if not chain:
        return "empty chain"
    when = datetime.datetime.fromtimestamp(now, datetime.UTC)
    for cert in chain:
        reason = _valid_at(cert, when)
        if reason is not None:
            return reason
    for child, parent in itertools.pairwise(chain):
        if not _is_ca(parent) or not _signed_by(child, parent):
            return f"{child.subject.rfc4514_string()} is not signed by the next certificate"
    last = chain[-1]
    for root in roots:
        if last == root:
            return None
        if _is_ca(root) and _signed_by(last, root) and _valid_at(root, when) is None:
            return None
    return f"{last.issuer.rfc4514_string()} is not an installed root certificate"


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def verify_firmware_signature(cert: x509.Certificate, signature_b64: str, path: Path) -> bool:
    """Whether `signature_b64` is the signing certificate's signature of the file's SHA-256
    (whitepaper 1.6 ed. 3, SignedUpdateFirmware: ECDSA or RSA PKCS#1 v1.5 over SHA-256)."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        return False
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    prehashed = utils.Prehashed(hashes.SHA256())
    key = cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest.digest(), ec.ECDSA(prehashed))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest.digest(), padding.PKCS1v15(), prehashed)
        else:
            return False
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Installed:
    """One installed root certificate."""

    kind: str
    path: Path
    cert: x509.Certificate

    def hash_data(self, algorithm: str = "SHA256") -> dict[str, str]:
        return hash_data(self.cert, self.cert, algorithm)


class CertificateStore:
    """Root certificates, the station key and its client certificate in one directory."""

    def __init__(self, directory: str | Path, *, max_certificates: int = 10) -> None:
        self.dir = Path(directory)
        self.max_certificates = max_certificates

    # ------------------------------------------------------------ roots

    def installed(self, kind: str | None = None) -> list[Installed]:
        """The installed root certificates of `kind` (or all), oldest file first."""
        found: list[Installed] = []
        for k in ROOT_TYPES if kind is None else (kind,):
            folder = self.dir / k
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.pem"), key=lambda p: (p.stat().st_mtime, p.name)):
                try:
                    found.append(Installed(k, path, load_chain(path.read_text())[0]))
                except (OSError, CertificateError):
                    continue  # an unreadable file is no root; it is not trusted either
        return found

    def roots(self, kind: str) -> list[x509.Certificate]:
        return [i.cert for i in self.installed(kind)]

    def roots_pem(self, kind: str) -> str:
        """The installed roots of `kind` as one PEM text (for `ssl` cadata)."""
        pems = (i.cert.public_bytes(serialization.Encoding.PEM) for i in self.installed(kind))
        return b"".join(pems).decode()

    def install(self, kind: str, pem: str, now: float) -> Literal["Accepted", "Rejected", "Failed"]:
        """InstallCertificate: a valid, self-signed CA certificate is stored (whitepaper 1.6
        ed. 3, InstallCertificate.conf): Rejected when it is not one or the store is full,
        Failed when it cannot be written."""
        if kind not in ROOT_TYPES:
            return "Rejected"
        try:
            chain = load_chain(pem)
        except CertificateError:
            return "Rejected"
        cert = chain[0]
        if len(chain) != 1 or not _is_ca(cert) or verify_chain([cert], [cert], now) is not None:
            return "Rejected"
        name = cert.fingerprint(hashes.SHA256()).hex() + ".pem"
        if not (self.dir / kind / name).exists() and len(self.installed()) >= (
            self.max_certificates
        ):
            return "Rejected"
        try:
            (self.dir / kind).mkdir(parents=True, exist_ok=True)
            _write_atomic(self.dir / kind / name, cert.public_bytes(serialization.Encoding.PEM))
        except OSError:
            return "Failed"
        return "Accepted"

    def ids(self, kind: str) -> list[dict[str, str]]:
        """GetInstalledCertificateIds: the hash data of every root of `kind`."""
        return [i.hash_data() for i in self.installed(kind)]

    def find(self, wanted: dict[str, Any]) -> Installed | None:
        """The installed root matching CertificateHashData `wanted` (any listed algorithm)."""
        algorithm = str(wanted.get("hash_algorithm", "SHA256"))
        if algorithm not in _HASHES:
            return None
        keys = ("issuer_name_hash", "issuer_key_hash", "serial_number")
        want = {k: str(wanted.get(k, "")).lower().lstrip("0") for k in keys}
        for item in self.installed():
            have = item.hash_data(algorithm)
            if all(have[k].lower().lstrip("0") == want[k] for k in keys):
                return item
        return None

    def delete(self, item: Installed) -> bool:
        try:
            item.path.unlink()
        except OSError:
            return False
        return True

    # ------------------------------------------------------------ the station's own

    @property
    def key_path(self) -> Path:
        return self.dir / "station.key"

    @property
    def cert_path(self) -> Path:
        return self.dir / "station.pem"

    def key(self) -> ec.EllipticCurvePrivateKey:
        """The station's private key, made (0600) the first time it is asked for."""
        if self.key_path.exists():
            loaded = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise CertificateError(f"{self.key_path}: not an EC private key")
            return loaded
        key = ec.generate_private_key(ec.SECP256R1())
        self.dir.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_secret(self.key_path, pem)
        return key

    def csr(self, common_name: str, organization: str) -> str:
        """A CSR for the station's key; CN = the station's identity, O = CpoName (whitepaper
        1.6 ed. 3, SignCertificate)."""
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "station")]
        if organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization[:64]))
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name(attributes))
            .sign(self.key(), hashes.SHA256())
        )
        return request.public_bytes(serialization.Encoding.PEM).decode()

    def client_chain(self) -> list[x509.Certificate]:
        """The station's client certificate chain (leaf first); empty when there is none."""
        try:
            return load_chain(self.cert_path.read_text())
        except (OSError, CertificateError):
            return []

    def check_signed(self, pem: str, roots: Sequence[x509.Certificate], now: float) -> str | None:
        """Why a CertificateSigned chain is not acceptable; None when it is."""
        try:
            chain = load_chain(pem)
        except CertificateError as exc:
            return str(exc)
        if not self.key_path.exists():
            return "no station key: no CSR was made"
        ours = (
            self.key()
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        theirs = (
            chain[0]
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        if ours != theirs:
            return "the certificate is not for the station's key"
        return verify_chain(chain, roots, now)

    def store_client_chain(self, pem: str) -> None:
        """Keep a checked chain as the station's client certificate (used from the next
        connection on)."""
        chain = load_chain(pem)
        text = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.cert_path, text)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
