"""Many `promptbus serve` processes on one port: the supervisor and the supervised side."""

from pipeline.processes.child import ChildRole, SupervisorGone
from pipeline.processes.supervisor import Supervisor

__all__ = ["ChildRole", "Supervisor", "SupervisorGone"]
