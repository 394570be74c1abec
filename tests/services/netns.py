"""A network namespace of the test's own, joined to the host by a veth pair.

An emulator started inside it is reachable at ``ns.addr``; :meth:`Netns.blackhole`
takes the namespace's end of the link down, so packets to it are silently
dropped: connections hang instead of being refused (a partition, not an HTTP
error). Everything is removed on exit (deleting the namespace deletes the pair).
Needs root and iproute2; tests skip otherwise.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence

import pytest


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *(["netns", "exec", ns, "ip"] if ns else []), *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=10)


class Netns:
    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"bs-{tag}"
        self.host_if, self.ns_if = f"bsh{tag}", f"bsn{tag}"
        octet = int(tag[:2], 16) % 200 + 20
        self.host_addr, self.addr = f"10.213.{octet}.1", f"10.213.{octet}.2"
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Netns:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            pytest.skip("network namespaces need root and iproute2")
        try:
            _ip("netns", "add", self.name)
        except subprocess.CalledProcessError as e:
            pytest.skip(f"ip netns add failed: {e.stderr.decode().strip()}")
        try:
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            _ip("addr", "add", f"{self.addr}/30", "dev", self.ns_if, ns=self.name)
            _ip("link", "set", self.ns_if, "up", ns=self.name)
            _ip("link", "set", "lo", "up", ns=self.name)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
            p.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=10)

    def start(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Run ``argv`` inside the namespace (killed on exit)."""
        p = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(p)
        return p

    def blackhole(self) -> None:
        """Take the namespace's end of the link down: the host keeps its route and its
        neighbour entry, so packets still leave, and vanish."""
        _ip("link", "set", self.ns_if, "down", ns=self.name)

    def restore(self) -> None:
        _ip("link", "set", self.ns_if, "up", ns=self.name)
