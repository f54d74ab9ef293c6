"""Streamed file transfers for firmware download and diagnostics upload: http(s), ftp(s).

http(s) goes through aiohttp; ftp and ftps (explicit TLS, RFC 4217, data channel protected)
through the standard ftplib in a worker thread (the only blocking part), with `user:password@`
taken from the URL. Files stream between disk and the socket in chunks; nothing holds a whole
file in memory. Every failure is one `TransferError`.

The location comes from the CSMS, so it is checked before any I/O (`check_location`): only
http, https, ftp and ftps with a host. `file://` and every other scheme would let the CSMS read
or write this board's files; they raise `TransferRefused` and are never retried.
"""

from __future__ import annotations

import asyncio
import ftplib
import ssl
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp

from system_aggregator.errors import AggregatorError

__all__ = [
    "ALLOWED_SCHEMES",
    "TransferError",
    "TransferRefused",
    "check_location",
    "download",
    "upload",
]

CHUNK = 256 * 1024
FTP_TIMEOUT_S = 30.0
ALLOWED_SCHEMES = ("http", "https", "ftp", "ftps")


class TransferError(AggregatorError):
    """A download or upload failed (unreachable, refused, or cut short)."""


class TransferRefused(TransferError):
    """The location is not allowed (scheme or missing host); nothing was read or written."""


def check_location(url: str) -> str:
    """The URL's scheme when it is http, https, ftp or ftps with a host; else `TransferRefused`.
    Pure: no I/O, no logging (the caller records the security event)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:  # e.g. a malformed IPv6 literal or port
        raise TransferRefused(f"location {_redact_safe(url)!r} is not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise TransferRefused(
            f"location scheme {scheme or '(none)'!r} refused in {_redact_safe(url)!r}: "
            "only http, https, ftp and ftps are allowed"
        )
    if not host:
        raise TransferRefused(f"location {_redact_safe(url)!r} has no host")
    return scheme


def _redact_safe(url: str) -> str:
    try:
        return _redact(url)
    except ValueError:
        return "<unparsable>"


async def download(url: str, dest: Path, timeout_s: float = 300.0) -> None:
    """Fetch `url` into `dest`, streaming; `TransferError` on any failure."""
    scheme = check_location(url)
    try:
        if scheme in ("http", "https"):
            await _http_get(url, dest, timeout_s)
        else:
            await asyncio.to_thread(_ftp_get, url, dest)
    except (OSError, aiohttp.ClientError, TimeoutError, ftplib.Error, EOFError) as exc:
        raise TransferError(f"download from {_redact(url)} failed: {_why(exc)}") from None


async def upload(url: str, src: Path, name: str, timeout_s: float = 300.0) -> str:
    """Send `src` as `name` to the directory `url` (OCPP 1.6 GetDiagnostics.location).

    ftp(s): STOR into the URL's directory. http(s): PUT to `url` + `name` when the URL ends with
    '/', else POST multipart (field `file`) to the URL. Returns where it went.
    """
    scheme = check_location(url)
    try:
        if scheme in ("http", "https"):
            return await _http_put_post(url, src, name, timeout_s)
        return await asyncio.to_thread(_ftp_put, url, src, name)
    except (OSError, aiohttp.ClientError, TimeoutError, ftplib.Error, EOFError) as exc:
        raise TransferError(f"upload to {_redact(url)} failed: {_why(exc)}") from None


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


async def _http_get(url: str, dest: Path, timeout_s: float) -> None:
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10.0)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, raise_for_status=True) as resp,
    ):
        expected = resp.content_length
        got = 0
        with dest.open("wb") as out:
            async for chunk in resp.content.iter_chunked(CHUNK):
                out.write(chunk)
                got += len(chunk)
        if expected is not None and got != expected:
            raise TransferError(f"connection closed after {got} of {expected} bytes")


async def _http_put_post(url: str, src: Path, name: str, timeout_s: float) -> str:
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10.0)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with src.open("rb") as f:
            if url.endswith("/"):
                target = url + name
                headers = {"Content-Type": "application/gzip"}
                async with session.put(target, data=f, headers=headers) as resp:
                    resp.raise_for_status()
                return target
            form = aiohttp.FormData()
            form.add_field("file", f, filename=name, content_type="application/gzip")
            async with session.post(url, data=form) as resp:
                resp.raise_for_status()
            return url


def _ftp_open(url: str) -> tuple[ftplib.FTP, str]:
    parts = urlsplit(url)
    tls = parts.scheme.lower() == "ftps"
    ftp = (
        ftplib.FTP_TLS(timeout=FTP_TIMEOUT_S, context=ssl.create_default_context())
        if tls
        else ftplib.FTP(timeout=FTP_TIMEOUT_S)
    )
    try:
        ftp.connect(parts.hostname or "", parts.port or 21)
        ftp.login(unquote(parts.username or "anonymous"), unquote(parts.password or ""))
        if isinstance(ftp, ftplib.FTP_TLS):
            ftp.prot_p()  # RFC 4217 §9: the data channel is encrypted too
    except BaseException:
        ftp.close()
        raise
    return ftp, unquote(parts.path)


def _ftp_get(url: str, dest: Path) -> None:
    ftp, path = _ftp_open(url)
    try:
        with dest.open("wb") as out:
            ftp.retrbinary(f"RETR {path}", out.write, blocksize=CHUNK)
        ftp.quit()
    finally:
        ftp.close()


def _ftp_put(url: str, src: Path, name: str) -> str:
    ftp, path = _ftp_open(url)
    try:
        if path.strip("/"):
            ftp.cwd(path)
        with src.open("rb") as f:
            ftp.storbinary(f"STOR {name}", f, blocksize=CHUNK)
        ftp.quit()
    finally:
        ftp.close()
    return _redact(url.rstrip("/") + "/" + name)
