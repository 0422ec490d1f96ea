"""Random ids and secrets from a per-thread buffer of the operating system's random bytes.

secrets.token_hex/token_urlsafe and uuid4 call os.urandom for each value: a
getrandom() system call, during which the calling thread lets go of the GIL
and must then wait to take it back from whichever thread took it. A start
makes three (its operation id and step secret on the SQLite writer thread,
its first task's id on the publisher thread), each a GIL hand-off among
threads that are all busy under load. Here each thread reads 4 KiB of
os.urandom at a time and hands out each byte once: the same source, one
system call per ~100 values. A forked child starts with an empty buffer, so
parent and child never hand out the same bytes.
"""

from __future__ import annotations

import base64
import os
import threading
import uuid

CHUNK = 4096


class _Buffer(threading.local):
    data = b""
    at = 0


_buffer = _Buffer()


def _forget() -> None:
    _buffer.data, _buffer.at = b"", 0


os.register_at_fork(after_in_child=_forget)


def token_bytes(count: int) -> bytes:
    """`count` random bytes (os.urandom's), never handed out before."""
    at = _buffer.at
    if at + count > len(_buffer.data):
        _buffer.data, at = os.urandom(max(CHUNK, count)), 0
    _buffer.at = at + count
    return _buffer.data[at : at + count]


def token_hex(count: int) -> str:
    """As secrets.token_hex: `count` random bytes as hex digits."""
    return token_bytes(count).hex()


def token_urlsafe(count: int) -> str:
    """As secrets.token_urlsafe: `count` random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(token_bytes(count)).rstrip(b"=").decode("ascii")


def uuid4() -> str:
    """As kombu.utils.uuid.uuid (str(uuid.uuid4())): a random UUID's text."""
    return str(uuid.UUID(bytes=token_bytes(16), version=4))
