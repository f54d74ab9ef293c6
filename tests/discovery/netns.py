"""Throwaway network namespaces joined by a bridge, for discovery tests run as root.

Everything lives inside namespaces this module creates: the bridge sits in its own "switch"
namespace and each veth pair is created with one end there and the other in a host namespace,
so the host's own network is never touched and addresses exist only inside the namespaces.
Deleting the namespaces removes every bridge and veth with them.
"""

from __future__ import annotations

import subprocess
import uuid

__all__ = ["NetnsLab", "NetnsUnavailable"]


class NetnsUnavailable(Exception):
    """`ip netns add` is not permitted here (not root, or no CAP_SYS_ADMIN)."""


def _ip(*args: str, ns: str | None = None) -> None:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=10)


class NetnsLab:
    """A bridge and hosts (`name -> ns`), each with `eth0` on one /24; `close()` removes all."""

    def __init__(self) -> None:
        self.prefix = f"cpd{uuid.uuid4().hex[:6]}"  # unique per run: parallel runs never collide
        self.switch = f"{self.prefix}-sw"
        self.hosts: dict[str, str] = {}
        self._namespaces: list[str] = []

    def _add_ns(self, ns: str) -> None:
        try:
            _ip("netns", "add", ns)
        except subprocess.CalledProcessError as exc:
            if not self._namespaces:
                raise NetnsUnavailable(exc.stderr.strip() or str(exc)) from None
            raise
        self._namespaces.append(ns)
        _ip("link", "set", "lo", "up", ns=ns)

    def open(self) -> NetnsLab:
        """Create the switch namespace and its bridge (multicast snooping off: mDNS floods)."""
        self._add_ns(self.switch)
        _ip("link", "add", "br0", "type", "bridge", "mcast_snooping", "0", ns=self.switch)
        _ip("link", "set", "br0", "up", ns=self.switch)
        return self

    def add_host(self, name: str, cidr: str) -> str:
        """A namespace with `eth0` at `cidr` plugged into the bridge; returns the namespace."""
        ns = f"{self.prefix}-{name}"
        self._add_ns(ns)
        port = f"p{len(self.hosts)}"
        _ip("link", "add", port, "type", "veth", "peer", "eth0", "netns", ns, ns=self.switch)
        _ip("link", "set", port, "master", "br0", "up", ns=self.switch)
        _ip("addr", "add", cidr, "dev", "eth0", ns=ns)
        _ip("link", "set", "eth0", "up", "multicast", "on", ns=ns)
        _ip("route", "add", "224.0.0.0/4", "dev", "eth0", ns=ns)
        self.hosts[name] = ns
        return ns

    def move(self, name: str, old_cidr: str, new_cidr: str) -> None:
        """Give host `name` a new address (as a DHCP renumbering would)."""
        ns = self.hosts[name]
        # Delete first: removing a primary address also removes secondaries in its subnet.
        _ip("addr", "del", old_cidr, "dev", "eth0", ns=ns)
        _ip("addr", "add", new_cidr, "dev", "eth0", ns=ns)

    def exec_prefix(self, name: str) -> list[str]:
        """argv prefix that runs a command inside host `name`'s namespace."""
        return ["ip", "netns", "exec", self.hosts[name]]

    def close(self) -> None:
        """Delete every namespace (and with them the bridge and veths); never raises."""
        for ns in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        self._namespaces.clear()
