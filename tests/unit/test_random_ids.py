"""server/random_ids.py: each byte handed out once, in the formats of the secrets and uuid modules, not repeated by a fork."""

from __future__ import annotations

import os
import re
import uuid

from pausable.server import random_ids


def test_values_have_the_standard_formats_and_never_repeat() -> None:
    seen = set()
    for _ in range(3 * random_ids.CHUNK // 16):  # several refills of the buffer
        token = random_ids.uuid4()
        assert uuid.UUID(token).version == 4 and str(uuid.UUID(token)) == token
        seen.add(token)
    assert len(seen) == 3 * random_ids.CHUNK // 16
    assert re.fullmatch(r"[0-9a-f]{20}", random_ids.token_hex(10))
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", random_ids.token_urlsafe(32))
    assert len(random_ids.token_bytes(random_ids.CHUNK * 2)) == random_ids.CHUNK * 2


def test_a_forked_child_does_not_hand_out_its_parents_next_bytes() -> None:
    random_ids.token_bytes(1)  # the parent's buffer holds unused bytes now
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(write, random_ids.token_bytes(32))
        os._exit(0)
    os.close(write)
    from_child = os.read(read, 32)
    os.close(read)
    os.waitpid(child, 0)
    assert len(from_child) == 32 and from_child != random_ids.token_bytes(32)
