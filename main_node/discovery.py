"""mDNS discovery on the main: satellites are found by serial and followed when they move.

Theory of operation
  `DiscoveryBook` is the pure core: it is fed resolved advertisements (`observe`) and withdrawals
  (`withdraw`) and answers `current(serial)` and `report(now)`; it does no I/O and reads no
  clock. `MdnsLocator` shuttles zeroconf browser events into it and implements
  `main_node.locator.Locator` for the link client.

  Boards are keyed by the `serial` TXT value, not by instance name: zeroconf renames a second
  board that claims a taken name (`SAT-1-2`), so two instances with one TXT serial is exactly a
  duplicate serial. Address policy, per serial, in order:
    1. the advertised address of the instance seen first (sticky while it stays advertised, so
       a duplicate never steals a running link; the duplicate is reported, not used);
    2. the static `host:port` from the config when nothing advertises the serial right now;
    3. the last advertised address (a withdrawn board usually comes back where it was).
  Of several addresses in one advertisement the newest is used (zeroconf lists them newest
  first), and a periodic re-read of the cache drops addresses replaced by a cache flush
  (RFC 6762 section 10.2) that the browser does not report.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Self

from zeroconf import DNSQuestionType, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from chargeport.config import MainConfig, parse_host_port
from chargeport.errors import ChargeportError
from chargeport.tasks import OwnedTasks
from main_node.errors import MainNodeError
from main_node.locator import Address, StaticLocator
from satellite.advertiser import (
    SERVICE_TYPE,
    TXT_BOOT,
    TXT_FW,
    TXT_PROTO,
    TXT_ROLE,
    TXT_SERIAL,
    decode_txt,
    interface_addresses,
    unroutable,
    zeroconf_interfaces,
)

__all__ = [
    "BoardRecord",
    "DiscoveryBook",
    "DiscoveryError",
    "DiscoveryReport",
    "DuplicateSerial",
    "MdnsLocator",
    "browse",
    "browse_report",
    "locator_from_config",
    "record_from_info",
]

log = logging.getLogger(__name__)


class DiscoveryError(MainNodeError):
    """mDNS browsing could not start (bad interface list)."""


@dataclass(frozen=True)
class BoardRecord:
    """One resolved advertisement."""

    serial: str
    role: str
    address: str  # the newest IPv4 address advertised
    port: int
    firmware_version: str
    boot_id: str
    protocol_version: int
    instance: str  # the mDNS instance name (the serial unless renamed on a conflict)
    host: str
    addresses: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Plain dict for `chargeport discover --json`."""
        out = asdict(self)
        out["addresses"] = list(self.addresses)
        return out


@dataclass(frozen=True)
class DuplicateSerial:
    """Several advertisements claim one serial."""

    serial: str
    instances: tuple[str, ...]
    addresses: tuple[Address, ...]
    used: Address | None  # the one `current()` returns (the first seen)


@dataclass(frozen=True)
class DiscoveryReport:
    """What discovery sees and what is wrong with it; every problem is also logged once."""

    boards: list[BoardRecord] = field(default_factory=list)
    duplicates: list[DuplicateSerial] = field(default_factory=list)
    never_seen: list[str] = field(default_factory=list)  # configured, not seen in time
    pending: list[str] = field(default_factory=list)  # configured, not seen yet, still waiting
    unconfigured: list[str] = field(default_factory=list)  # seen, not in the config
    withdrawn: list[str] = field(default_factory=list)  # configured, seen, now gone
    # serial -> why its advertised address cannot be dialled from this main
    unroutable: dict[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """One line per problem, phrased as what to fix."""
        lines = [
            f"serial {d.serial} is advertised by {len(d.instances)} boards "
            f"({', '.join(f'{h}:{p}' for h, p in d.addresses)}); using the first seen - "
            "give every board a unique serial"
            for d in self.duplicates
        ]
        lines += [
            f"satellite {s} is configured but was never seen on mDNS - check it is powered, "
            "on this network, and that link.mdns_interfaces includes its interface"
            for s in self.never_seen
        ]
        lines += [
            f"board {s} is advertised but not configured - add it to [[satellites]] or ignore it"
            for s in self.unconfigured
        ]
        lines += [
            f"satellite {s} is no longer advertised (powered off, restarting or unplugged); "
            "using its last address"
            for s in self.withdrawn
        ]
        lines += [
            f"board {s} advertises {why} - set link.mdns_interfaces on that board to its LAN "
            'interface (or "all")'
            for s, why in sorted(self.unroutable.items())
        ]
        return lines


class DiscoveryBook:
    """Pure discovery state: advertisements in, addresses and reports out."""

    def __init__(
        self,
        expected: dict[str, int] | None,
        *,
        static: dict[str, Address] | None = None,
        started_at: float = 0.0,
        never_seen_after_s: float = 10.0,
        lan: bool = True,
    ) -> None:
        # lan: this main browses interfaces other than loopback, so a board on this network
        # that advertises a loopback address named the wrong host.
        self._lan = lan
        # None = just looking (`chargeport discover`): nothing is missing or unconfigured.
        self.expected = None if expected is None else dict(expected)
        self.static = dict(static or {})
        self._started_at = started_at
        self._never_seen_after_s = never_seen_after_s
        self._by_instance: dict[str, BoardRecord] = {}  # advertised now, insertion = first seen
        self._chosen: dict[str, str] = {}  # serial -> instance used for current()
        self._last: dict[str, Address] = {}  # serial -> last advertised address
        self._ever_seen: set[str] = set()

    def current(self, serial: str) -> Address | None:
        """The address to dial for `serial` per the policy in the module docstring."""
        instance = self._chosen.get(serial)
        if instance is not None and instance in self._by_instance:
            rec = self._by_instance[instance]
            if self._dialable(rec.address):
                return (rec.address, rec.port)
        return self.static.get(serial) or self._last.get(serial)

    def _dialable(self, address: str) -> bool:
        # 0.0.0.0 would dial this very host; never use it, whatever the interfaces.
        return address != "0.0.0.0"

    def _unroutable_reason(self, record: BoardRecord) -> str | None:
        why = unroutable(record.address)
        if why is None or (self._lan is False and record.address.startswith("127.")):
            return None
        return f"{record.address} ({why})"

    def observe(self, record: BoardRecord) -> set[str]:
        """Take a resolved advertisement; return the serials whose `current()` changed."""
        before = self.current(record.serial)
        self._by_instance[record.instance] = record
        self._ever_seen.add(record.serial)
        chosen = self._chosen.get(record.serial)
        if chosen is None or chosen not in self._by_instance:
            self._chosen[record.serial] = record.instance
        if self._chosen[record.serial] == record.instance and self._dialable(record.address):
            self._last[record.serial] = (record.address, record.port)
        return {record.serial} if self.current(record.serial) != before else set()

    def withdraw(self, instance: str) -> set[str]:
        """An instance said goodbye (or expired); return the serials whose `current()` changed."""
        record = self._by_instance.pop(instance, None)
        if record is None:
            return set()
        serial = record.serial
        before = self.current(serial)
        if self._chosen.get(serial) == instance:
            # Fall over to another advertisement of the serial, oldest first, if any.
            others = [r for r in self._by_instance.values() if r.serial == serial]
            if others:
                self._chosen[serial] = others[0].instance
                self._last[serial] = (others[0].address, others[0].port)
            else:
                del self._chosen[serial]
        return {serial} if self.current(serial) != before else set()

    def instances(self) -> list[str]:
        """Instance names advertised now."""
        return list(self._by_instance)

    def report(self, now: float) -> DiscoveryReport:
        """The current picture; `now` decides when a missing board counts as never seen."""
        boards = sorted(self._by_instance.values(), key=lambda r: (r.serial, r.instance))
        by_serial: dict[str, list[BoardRecord]] = {}
        for rec in self._by_instance.values():
            by_serial.setdefault(rec.serial, []).append(rec)
        duplicates = [
            DuplicateSerial(
                serial=serial,
                instances=tuple(r.instance for r in recs),
                addresses=tuple((r.address, r.port) for r in recs),
                used=self.current(serial),
            )
            for serial, recs in sorted(by_serial.items())
            if len(recs) > 1
        ]
        expected = {} if self.expected is None else self.expected
        missing = sorted(s for s in expected if s not in self._ever_seen)
        late = now - self._started_at >= self._never_seen_after_s
        return DiscoveryReport(
            boards=boards,
            duplicates=duplicates,
            never_seen=missing if late else [],
            pending=[] if late else missing,
            unconfigured=[]
            if self.expected is None
            else sorted(s for s in by_serial if s not in expected),
            withdrawn=sorted(s for s in expected if s in self._ever_seen and s not in by_serial),
            unroutable={
                rec.serial: why
                for rec in boards
                if (why := self._unroutable_reason(rec)) is not None
            },
        )


def record_from_info(info: AsyncServiceInfo) -> BoardRecord | None:
    """A resolved ServiceInfo -> BoardRecord; None while it has no IPv4 address or port."""
    addresses = tuple(info.parsed_addresses(IPVersion.V4Only))
    if not addresses or not info.port:
        return None
    # Prefer an address another host can reach; keep zeroconf's newest-first order otherwise.
    routable = [a for a in addresses if unroutable(a) is None]
    txt = decode_txt(info.properties)
    instance = info.name.removesuffix("." + SERVICE_TYPE)
    try:
        proto = int(txt.get(TXT_PROTO, "0"))
    except ValueError:
        proto = 0
    return BoardRecord(
        serial=txt.get(TXT_SERIAL) or instance,
        role=txt.get(TXT_ROLE, ""),
        address=(routable or list(addresses))[0],
        port=info.port,
        firmware_version=txt.get(TXT_FW, ""),
        boot_id=txt.get(TXT_BOOT, ""),
        protocol_version=proto,
        instance=instance,
        host=(info.server or "").removesuffix("."),
        addresses=addresses,
    )


class MdnsLocator:
    """Browses `_chargeport._tcp` continuously; a `Locator` for serials in `expected`."""

    def __init__(
        self,
        expected: dict[str, int] | None,
        *,
        interfaces: list[str] | None,
        static: dict[str, Address] | None = None,
        never_seen_after_s: float = 10.0,
        refresh_s: float = 1.0,
        resolve_timeout_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interfaces = None if interfaces is None else list(interfaces)
        self._clock = clock
        self._book = DiscoveryBook(
            expected,
            static=static,
            started_at=clock(),
            never_seen_after_s=never_seen_after_s,
            lan=_browses_lan(self._interfaces),
        )
        self._refresh_s = refresh_s
        self._resolve_timeout_ms = int(resolve_timeout_s * 1000)
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks = OwnedTasks(log)
        self._generation: dict[str, int] = {}  # instance -> bumps on removal (stale resolves)
        self._changed = asyncio.Event()  # replaced after each address change
        self._updated = asyncio.Event()  # replaced after every advertisement or refresh
        self._logged: set[str] = set()

    # -------------------------------------------------------------- Locator

    def current(self, serial: str) -> Address | None:
        """The address to dial for `serial` (discovered first, then static, then last seen)."""
        return self._book.current(serial)

    async def wait_change(self, serial: str, old: Address | None) -> Address:
        """Return once `serial`'s address is known and differs from `old`."""
        while True:
            changed = self._changed
            addr = self._book.current(serial)
            if addr is not None and addr != old:
                return addr
            await changed.wait()

    def report(self) -> DiscoveryReport:
        """Boards seen, duplicates, missing and unconfigured serials."""
        return self._book.report(self._clock())

    async def wait_report(self, predicate: Callable[[DiscoveryReport], bool]) -> DiscoveryReport:
        """Return the first report (now or after an update) for which `predicate` holds."""
        while True:
            updated = self._updated
            report = self.report()
            if predicate(report):
                return report
            await updated.wait()

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open mDNS sockets and start browsing."""
        if self._zc is not None:
            return
        try:
            self._zc = AsyncZeroconf(
                interfaces=zeroconf_interfaces(self._interfaces), ip_version=IPVersion.V4Only
            )
        except ChargeportError as exc:
            raise DiscoveryError(str(exc)) from None
        except OSError as exc:
            raise DiscoveryError(
                f"mDNS: cannot open interfaces {self._interfaces or 'all'}: {exc}; "
                "check link.mdns_interfaces"
            ) from None
        # QM, not the default first QU query: on one host several responders share port 5353 and
        # a unicast answer reaches only one socket, which delayed discovery by a second.
        self._browser = AsyncServiceBrowser(
            self._zc.zeroconf,
            SERVICE_TYPE,
            handlers=[self._on_service_state_change],
            question_type=DNSQuestionType.QM,
        )
        self._tasks.spawn(self._async_refresh_loop(), "mdns-refresh")

    async def stop(self) -> None:
        """Stop browsing, cancel pending resolves and close the sockets."""
        browser, self._browser = self._browser, None
        if browser is not None:
            await browser.async_cancel()
        await self._tasks.cancel_all()
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

    # -------------------------------------------------------------- zeroconf side

    def _on_service_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        # AsyncServiceBrowser fires its handlers inside our event loop (zeroconf asyncio API),
        # so no thread hop is needed here.
        instance = name.removesuffix("." + SERVICE_TYPE)
        if state_change is ServiceStateChange.Removed:
            self._generation[instance] = self._generation.get(instance, 0) + 1
            self._apply(self._book.withdraw(instance))
        else:
            self._tasks.spawn(
                self.async_resolve(name, self._generation.get(instance, 0)), f"mdns-resolve-{name}"
            )

    async def async_resolve(self, name: str, generation: int) -> None:
        """Resolve one instance and feed it to the book unless it was removed meanwhile."""
        zc = self._zc
        if zc is None:
            return
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(
            zc.zeroconf, self._resolve_timeout_ms, question_type=DNSQuestionType.QM
        ):
            log.debug("mDNS: %s did not resolve in time", name)
            return
        record = record_from_info(info)
        if record is None or self._generation.get(record.instance, 0) != generation:
            return
        self._apply(self._book.observe(record))

    async def _async_refresh_loop(self) -> None:
        # The browser does not report address records expiring after a cache flush; re-read
        # the cache so a moved board's old address goes away, and log report changes.
        while True:
            zc = self._zc
            changed: set[str] = set()
            if zc is not None:
                for instance in self._book.instances():
                    info = AsyncServiceInfo(SERVICE_TYPE, f"{instance}.{SERVICE_TYPE}")
                    if info.load_from_cache(zc.zeroconf):
                        record = record_from_info(info)
                        if record is not None:
                            changed |= self._book.observe(record)
            # Applied even when nothing changed: time alone can make a board "never seen".
            self._apply(changed)
            await asyncio.sleep(self._refresh_s)

    def _apply(self, changed: set[str]) -> None:
        if changed:
            for serial in sorted(changed):
                log.info("satellite %s is at %s", serial, self._book.current(serial))
            self._changed.set()
            self._changed = asyncio.Event()
        self._updated.set()
        self._updated = asyncio.Event()
        self._log_report()

    def _log_report(self) -> None:
        problems = set(self.report().problems())
        for line in sorted(problems - self._logged):
            log.warning("discovery: %s", line)
        for line in sorted(self._logged - problems):
            log.info("discovery: resolved: %s", line)
        self._logged = problems


def _browses_lan(entries: list[str] | None) -> bool:
    """True when the chosen interfaces include one that is not loopback."""
    try:
        chosen = interface_addresses(entries)
    except ChargeportError:
        return True  # start() reports the bad entry
    return any(not a.startswith("127.") for a in chosen)


async def browse(
    duration_s: float,
    interfaces: list[str] | None = ["127.0.0.1"],  # noqa: B006 - never mutated
) -> list[BoardRecord]:
    """Every board advertised within `duration_s` seconds (for `chargeport discover`)."""
    return (await browse_report(duration_s, interfaces, None)).boards


async def browse_report(
    duration_s: float, interfaces: list[str] | None, expected: dict[str, int] | None
) -> DiscoveryReport:
    """Browse for `duration_s` seconds and report against the `expected` serials (if any)."""
    locator = MdnsLocator(expected, interfaces=interfaces, never_seen_after_s=duration_s)
    async with locator:
        await asyncio.sleep(duration_s)
        return locator.report()


def locator_from_config(config: MainConfig) -> MdnsLocator | StaticLocator:
    """The locator the main's config asks for: mDNS with static fallbacks, or static only."""
    static = {s.serial: parse_host_port(s.address) for s in config.satellites if s.address}
    if not config.link.mdns:
        return StaticLocator(static)
    return MdnsLocator(
        {s.serial: s.connector for s in config.satellites},
        interfaces=config.link.mdns_interfaces,
        static=static,
    )
