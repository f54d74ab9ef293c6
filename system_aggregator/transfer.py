"""Streamed file transfers for firmware download and diagnostics upload: http(s) and ftp.

http(s) goes through aiohttp; ftp through the standard ftplib in a worker thread (the only
blocking part), with `user:password@` taken from the URL. Files stream between disk and the
socket in chunks; nothing holds a whole file in memory. Every failure is one `TransferError`.
"""

from __future__ import annotations

import asyncio
import ftplib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp

from chargeport.errors import ChargeportError

__all__ = ["TransferError", "download", "upload"]

CHUNK = 256 * 1024
FTP_TIMEOUT_S = 30.0


class TransferError(ChargeportError):
    """A download or upload failed (unreachable, refused, or cut short)."""


def _scheme(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "ftp", "file"):
        raise TransferError(f"unsupported location {url!r}: use http, https or ftp")
    return scheme


async def download(url: str, dest: Path, timeout_s: float = 300.0) -> None:
    """Fetch `url` into `dest`, streaming; `TransferError` on any failure."""
    scheme = _scheme(url)
    try:
        if scheme in ("http", "https"):
            await _http_get(url, dest, timeout_s)
        elif scheme == "ftp":
            await asyncio.to_thread(_ftp_get, url, dest)
        else:
            await asyncio.to_thread(_file_copy, Path(unquote(urlsplit(url).path)), dest)
    except (OSError, aiohttp.ClientError, TimeoutError, ftplib.Error, EOFError) as exc:
        raise TransferError(f"download from {_redact(url)} failed: {_why(exc)}") from None


async def upload(url: str, src: Path, name: str, timeout_s: float = 300.0) -> str:
    """Send `src` as `name` to the directory `url` (OCPP 1.6 GetDiagnostics.location).

    ftp: STOR into the URL's directory. http(s): PUT to `url` + `name` when the URL ends with
    '/', else POST multipart (field `file`) to the URL. Returns where it went.
    """
    scheme = _scheme(url)
    try:
        if scheme in ("http", "https"):
            return await _http_put_post(url, src, name, timeout_s)
        if scheme == "ftp":
            return await asyncio.to_thread(_ftp_put, url, src, name)
        target = Path(unquote(urlsplit(url).path)) / name
        await asyncio.to_thread(_file_copy, src, target)
        return str(target)
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
    ftp = ftplib.FTP(timeout=FTP_TIMEOUT_S)
    try:
        ftp.connect(parts.hostname or "", parts.port or 21)
        ftp.login(unquote(parts.username or "anonymous"), unquote(parts.password or ""))
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


def _file_copy(src: Path, dest: Path) -> None:
    with src.open("rb") as f, dest.open("wb") as out:
        while chunk := f.read(CHUNK):
            out.write(chunk)
