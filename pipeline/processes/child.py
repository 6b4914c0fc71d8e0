"""The supervised side: a `serve` child that dies with its supervisor and says when it listens."""

import ctypes
import os
import signal
import sys
from dataclasses import dataclass

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class SupervisorGone(Exception):
    """Raised when a child finds its supervisor gone before it could start."""


@dataclass(frozen=True)
class ChildRole:
    """A supervised child's place: its number, its supervisor and its readiness pipe."""

    index: int
    parent_pid: int
    ready_fd: int

    def die_with_parent(self) -> None:
        """Have the kernel send SIGTERM when the supervisor dies; fail if it already has."""
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
        # Checked after the prctl: a supervisor that died before it would never signal us.
        if os.getppid() != self.parent_pid:
            raise SupervisorGone(f"supervisor {self.parent_pid} is gone")

    def report_ready(self) -> None:
        """Tell the supervisor this child listens and serves."""
        try:
            os.write(self.ready_fd, b"ready\n")
        finally:
            os.close(self.ready_fd)
