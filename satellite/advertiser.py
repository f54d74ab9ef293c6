"""The satellite's mDNS advertisement: `_chargeport._tcp.local.` named by the board serial.

Theory of operation
  The instance name is the serial and the TXT record carries serial, protocol version (`proto`),
  firmware version (`fw`), boot id (`boot`) and role (RFC 6763 section 6: key=value strings).
  `start()` probes for the name (RFC 6762 section 8.1) and announces; a second board claiming
  the same serial finds the holder and renames itself `SERIAL-2` but keeps `serial=SERIAL` in
  its TXT, so the main sees two instances for one serial and reports the duplicate instead of
  silently picking one (this side logs a warning too). `update()` re-announces new TXT values
  (RFC 6762 section 8.4) and, when the board's addresses change, withdraws the old records with
  a goodbye before announcing the new ones so no peer keeps a stale address. `stop()` sends
  goodbyes (RFC 6762 section 10.1). The host name carries a random token so two boards with the
  same serial never overwrite each other's address records.

The TXT format and the interface choice live here and are read by `main_node.discovery`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, NonUniqueNameException

# Not in zeroconf's __all__ though re-exported; needed to send our own QM probe.
from zeroconf._dns import DNSQuestion, DNSService
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

import chargeport
from satellite.errors import SatelliteError

__all__ = [
    "SERVICE_TYPE",
    "TXT_BOOT",
    "TXT_FW",
    "TXT_PROTO",
    "TXT_ROLE",
    "TXT_SERIAL",
    "WILDCARDS",
    "Advertiser",
    "AdvertiserError",
    "Interface",
    "advertised_addresses",
    "decode_txt",
    "host_interfaces",
    "interface_addresses",
    "txt_record",
    "unroutable",
    "zeroconf_interfaces",
]

log = logging.getLogger(__name__)

SERVICE_TYPE = "_chargeport._tcp.local."
TXT_SERIAL = "serial"
TXT_PROTO = "proto"
TXT_FW = "fw"
TXT_BOOT = "boot"
TXT_ROLE = "role"

# DNS constants (RFC 1035 section 3.2): a query message, class IN, types ANY and SRV.
_FLAGS_QUERY = 0x0000
_CLASS_IN = 1
_TYPE_ANY = 255
_TYPE_SRV = 33


class AdvertiserError(SatelliteError):
    """The advertisement could not be published (bad interface, name taken, not started)."""


WILDCARDS = frozenset({"all", "0.0.0.0", "*"})


@dataclass(frozen=True)
class Interface:
    """One network interface: its name and IPv4 addresses (what `ifaddr` reports)."""

    name: str
    ipv4: tuple[str, ...]


def host_interfaces() -> list[Interface]:
    """This host's interfaces with their IPv4 addresses."""
    return [
        Interface(adapter.name, tuple(str(ip.ip) for ip in adapter.ips if ip.is_IPv4))
        for adapter in ifaddr.get_adapters()
    ]


def _is_wildcard(entries: list[str] | None) -> bool:
    return entries is None or any(e in WILDCARDS for e in entries)


def interface_addresses(
    entries: list[str] | None, interfaces: list[Interface] | None = None
) -> list[str]:
    """Config `mdns_interfaces` -> the IPv4 addresses of the chosen interfaces.

    An entry is an IPv4 address of this host, an interface name (`eth0`), or a wildcard
    (`all`, `0.0.0.0`, `*`, or no list at all): every interface that is not loopback. Loopback
    is used only when named (`127.0.0.1`, `lo`) or when the host has nothing else, so a board
    never tells the LAN to dial 127.0.0.1; 0.0.0.0 is never an address (it means "any").
    """
    found = host_interfaces() if interfaces is None else interfaces
    if _is_wildcard(entries):
        lan = [a for i in found for a in i.ipv4 if not _is_loopback(a)]
        if lan:
            return _unique(lan)
        log.warning("mDNS: no interface but loopback is up; advertising 127.0.0.1 only")
        return ["127.0.0.1"]
    assert entries is not None
    out: list[str] = []
    for entry in entries:
        if _is_ipv4(entry):
            out.append(entry)
            continue
        match = [i for i in found if i.name == entry]
        if not match:
            names = ", ".join(i.name for i in found) or "none"
            raise AdvertiserError(
                f"link.mdns_interfaces: {entry!r} is neither an IPv4 address nor an interface "
                f'of this host (interfaces: {names}); use an address, a name, or "all"'
            )
        if not match[0].ipv4:
            raise AdvertiserError(
                f"link.mdns_interfaces: interface {entry!r} has no IPv4 address; "
                "bring it up or choose another"
            )
        out.extend(match[0].ipv4)
    return _unique(out)


def zeroconf_interfaces(
    entries: list[str] | None, interfaces: list[Interface] | None = None
) -> InterfaceChoice | list[str]:
    """Config `mdns_interfaces` -> zeroconf's choice: a wildcard means every interface."""
    if _is_wildcard(entries):
        return InterfaceChoice.All
    return interface_addresses(entries, interfaces)


def advertised_addresses(
    entries: list[str] | None,
    addresses: list[str] | None,
    interfaces: list[Interface] | None = None,
) -> list[str]:
    """IPv4 addresses to publish: explicit ones, else those of the chosen interfaces.

    Never the unspecified address: a peer that dialled 0.0.0.0 would reach itself.
    """
    if addresses:
        bad = [a for a in addresses if not _is_ipv4(a) or _is_unspecified(a)]
        if bad:
            raise AdvertiserError(
                f"cannot advertise {', '.join(bad)}: give the board's own IPv4 address"
            )
        return list(addresses)
    return interface_addresses(entries, interfaces)


def unroutable(address: str) -> str | None:
    """Why `address` cannot reach a board on another host, or None when it can."""
    if not _is_ipv4(address):
        return "not an IPv4 address"
    if _is_unspecified(address):
        return "0.0.0.0 means 'any address', it names no host"
    if _is_loopback(address):
        return "a loopback address reaches only the host that dials it"
    return None


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


def _is_loopback(text: str) -> bool:
    return _is_ipv4(text) and ipaddress.ip_address(text).is_loopback


def _is_unspecified(text: str) -> bool:
    return _is_ipv4(text) and ipaddress.ip_address(text).is_unspecified


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def txt_record(
    serial: str, protocol_version: int, firmware_version: str, boot_id: str, role: str
) -> dict[str, str]:
    """The TXT key/value pairs of one board (RFC 6763 section 6.3: short keys)."""
    return {
        TXT_SERIAL: serial,
        TXT_PROTO: str(protocol_version),
        TXT_FW: firmware_version,
        TXT_BOOT: boot_id,
        TXT_ROLE: role,
    }


def decode_txt(properties: Mapping[bytes, bytes | None]) -> dict[str, str]:
    """zeroconf's raw TXT properties -> str dict; a key without a value maps to ''."""
    return {
        k.decode("utf-8", "replace"): (v or b"").decode("utf-8", "replace")
        for k, v in properties.items()
    }


class Advertiser:
    """Publishes one board on mDNS; `start`, `update` (re-announce) and `stop` (goodbye)."""

    def __init__(
        self,
        serial: str,
        port: int,
        *,
        boot_id: str,
        firmware_version: str,
        role: str = "satellite",
        protocol_version: int = chargeport.PROTOCOL_VERSION,
        interfaces: list[str] | None = ["127.0.0.1"],  # noqa: B006 - never mutated
        addresses: list[str] | None = None,
        cooperating_responders: bool = False,
        probe_s: float = 0.75,
        host_token: str | None = None,
    ) -> None:
        self.serial = serial
        self.port = port
        self.boot_id = boot_id
        self.firmware_version = firmware_version
        self.role = role
        self.protocol_version = protocol_version
        self._interfaces = None if interfaces is None else list(interfaces)
        self._addresses = None if addresses is None else list(addresses)
        # Probing (RFC 6762 section 8.1, ~`probe_s`) is what detects a second board with our
        # serial; skip it only where names are known to be unique (tests, benchmarks).
        self._cooperating = cooperating_responders
        self._probe_s = probe_s
        self._host = f"{serial}-{host_token or secrets.token_hex(3)}.local."
        self._zc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._published: list[str] = []  # what the last announcement carried

    @property
    def name(self) -> str:
        """The instance name actually registered (differs from the serial on a conflict)."""
        return self._info.name if self._info is not None else f"{self.serial}.{SERVICE_TYPE}"

    @property
    def name_conflict(self) -> bool:
        """True when another board already advertised our serial and we were renamed."""
        return self._info is not None and self._info.name != f"{self.serial}.{SERVICE_TYPE}"

    @property
    def addresses(self) -> list[str]:
        """The addresses an announcement made now would carry."""
        return advertised_addresses(self._interfaces, self._addresses)

    def _build_info(self, name: str) -> AsyncServiceInfo:
        self._published = self.addresses
        return AsyncServiceInfo(
            SERVICE_TYPE,
            name,
            port=self.port,
            properties=txt_record(
                self.serial, self.protocol_version, self.firmware_version, self.boot_id, self.role
            ),
            server=self._host,
            parsed_addresses=self._published,
        )

    async def start(self) -> None:
        """Probe for the serial's name and announce the board."""
        if self._zc is not None:
            raise AdvertiserError(f"advertiser for {self.serial} already started")
        try:
            zc = AsyncZeroconf(
                interfaces=zeroconf_interfaces(self._interfaces), ip_version=IPVersion.V4Only
            )
        except OSError as exc:
            raise AdvertiserError(
                f"mDNS: cannot open interfaces {self._interfaces or 'all'}: {exc}; "
                "check link.mdns_interfaces"
            ) from None
        self._zc = zc
        try:
            name = await self._async_free_name(zc)
            info = self._build_info(name)
            # `_async_free_name` was the probe; zeroconf's would only repeat it, as QU.
            announced = await zc.async_register_service(
                info, allow_name_change=False, cooperating_responders=True
            )
            await announced
        except (NonUniqueNameException, OSError) as exc:
            await self._close()
            raise AdvertiserError(f"mDNS: cannot advertise {self.serial}: {exc!r}") from None
        self._info = info
        if self.name_conflict:
            log.warning(
                "another board already advertises serial %s; advertising as %r - "
                "fix the duplicate serial (the main will report it)",
                self.serial,
                info.name,
            )
        else:
            log.info("advertising %s on %s port %d", self.serial, self.addresses, self.port)

    async def _async_free_name(self, zc: AsyncZeroconf) -> str:
        """The first of SERIAL, SERIAL-2, ... that no other host holds (RFC 6762 section 8.1)."""
        if self._cooperating:
            return f"{self.serial}.{SERVICE_TYPE}"
        for n in range(1, 100):
            name = f"{self.serial}{'' if n == 1 else f'-{n}'}.{SERVICE_TYPE}"
            if not await self._async_name_taken(zc, name):
                return name
        raise AdvertiserError(f"mDNS: every name for serial {self.serial} is taken")

    async def _async_name_taken(self, zc: AsyncZeroconf, name: str) -> bool:
        # Three ANY probes 250 ms apart with an authority section, which makes them probes
        # (RFC 6762 section 8.1). Sent QM: a holder answers a probe by multicast at once, whereas
        # zeroconf's own QU probes are answered by unicast, which on one host reaches a random
        # one of the sockets sharing port 5353 and so misses a duplicate.
        info = self._build_info(name)
        mine = info.dns_service().server_key
        for _ in range(3):
            out = DNSOutgoing(_FLAGS_QUERY)
            out.add_question(DNSQuestion(name, _TYPE_ANY, _CLASS_IN))
            out.add_authorative_answer(info.dns_pointer())
            zc.zeroconf.async_send(out)
            await asyncio.sleep(self._probe_s / 3)
            for record in zc.zeroconf.cache.async_all_by_details(name, _TYPE_SRV, _CLASS_IN):
                if isinstance(record, DNSService) and record.server_key != mine:
                    return True
        return False

    async def update(
        self,
        *,
        boot_id: str | None = None,
        firmware_version: str | None = None,
        addresses: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        """Re-announce with a new boot id, firmware version, port or addresses."""
        if self._zc is None or self._info is None:
            raise AdvertiserError(f"advertiser for {self.serial} is not started")
        old_addresses = self._published
        self.boot_id = boot_id if boot_id is not None else self.boot_id
        self.firmware_version = (
            firmware_version if firmware_version is not None else self.firmware_version
        )
        self.port = port if port is not None else self.port
        self._addresses = addresses if addresses is not None else self._addresses
        if _is_wildcard(self._interfaces):
            # An interface may have changed address: rebind sockets before announcing.
            await self._zc.async_update_interfaces()
        info = self._build_info(self._info.name)
        if self._published != old_addresses:
            # Goodbye first (RFC 6762 section 10.1) so peers drop the old address records now
            # rather than after their TTL; our name stays ours, so no new probe.
            await (await self._zc.async_unregister_service(self._info))
            await (
                await self._zc.async_register_service(
                    info, allow_name_change=False, cooperating_responders=True
                )
            )
        else:
            await (await self._zc.async_update_service(info))
        self._info = info
        log.info(
            "re-announced %s (boot %s, fw %s)", self.serial, self.boot_id, self.firmware_version
        )

    async def stop(self) -> None:
        """Withdraw the advertisement with goodbye packets and close the sockets."""
        if self._zc is None:
            return
        if self._info is not None:
            try:
                await (await self._zc.async_unregister_service(self._info))
            except OSError as exc:  # the interface may be gone already; closing still matters
                log.warning("mDNS goodbye for %s failed: %r", self.serial, exc)
            self._info = None
        await self._close()

    async def _close(self) -> None:
        zc, self._zc = self._zc, None
        if zc is not None:
            await zc.async_close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
