"""What no other test or run shares: free loopback ports and fresh ids."""

import socket
import uuid


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_id(prefix: str) -> str:
    """A unique id for a job or a prompt of one test."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
