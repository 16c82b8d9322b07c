"""Who claims a digest: this process as ``host/boot/pid/start``, and whether a claimer is dead.

A claim names its owner so that a restart can tell a dead sender from a live one at once: on
the same host and boot, a process whose pid is gone (or reused by a process started at another
time) is dead, and its half-sent digest is resumed without waiting for the claim to go stale.
Owners on another host (or from an unknown format) can't be judged from here: their claims are
respected until they go stale.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True, slots=True)
class Owner:
    host: str
    boot: str
    pid: int
    start: str  # the process's start time (clock ticks since boot), "" where unknown

    def __str__(self) -> str:
        return f"{self.host}/{self.boot}/{self.pid}/{self.start}"

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        parts = text.rsplit("/", 3)
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]), parts[3])


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text("ascii").strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """Field 22 of ``/proc/<pid>/stat``: when the process started, in ticks since boot."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text("ascii", errors="replace")
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


@functools.cache
def this_process() -> Owner:
    pid = os.getpid()
    return Owner(socket.gethostname(), _boot_id(), pid, _start_time(pid))


def is_dead(owner_text: str, me: Owner | None = None) -> bool:
    """True only when ``owner_text`` names a process of this host that is certainly gone."""
    me = me or this_process()
    owner = Owner.parse(owner_text)
    if owner is None or owner.host != me.host:
        return False
    if owner.boot and me.boot and owner.boot != me.boot:
        return True  # the machine restarted since
    if owner.pid == me.pid:
        return owner.start != me.start  # our pid, but an earlier process's claim
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # a process of another user has that pid: alive, and not ours to judge
    # The pid lives: dead only if it now belongs to a process started at another time.
    return bool(owner.start) and _start_time(owner.pid) not in ("", owner.start)
