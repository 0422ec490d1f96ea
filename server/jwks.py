"""The keys of a JWKS file (`jwt_jwks_file`), reloaded while the daemon runs, so keys rotate without a restart.

On a token's way in (`JwksFile.keys_for`): the file is looked at (mtime, size,
inode: a replacement by rename counts) at most once per CHECK_SECONDS and
read again when it changed; and a token naming a `kid` the loaded keys do not
hold reads it again at once, at most once per UNKNOWN_KID_SECONDS, for file
systems whose mtime is too coarse to see a quick rewrite (a stream of made-up
kids costs one small file read per that interval, not one per call).
A reload replaces the whole set: a key removed from the file stops verifying.
A file that cannot be read or parsed (caught mid-write, say) keeps the keys in
use, with a warning; at start it is an error, as any bad setting is.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("pausable.server")

CHECK_SECONDS = 1.0
UNKNOWN_KID_SECONDS = 5.0

# (key id or "", key, the one algorithm it verifies)
Key = tuple[str, Any, str]


def read_jwks(path: Path) -> list[Key]:
    import jwt

    return [(key.key_id or "", key.key, key.algorithm_name) for key in jwt.PyJWKSet.from_json(path.read_text()).keys]


class JwksFile:
    def __init__(
        self,
        path: str,
        clock: Callable[[], float] = time.monotonic,
        check_seconds: float = CHECK_SECONDS,
        unknown_kid_seconds: float = UNKNOWN_KID_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.check_seconds = check_seconds
        self.unknown_kid_seconds = unknown_kid_seconds
        self._stamp = self._stat()
        self.keys = read_jwks(self.path)
        self._checked = clock()
        self._forced = -math.inf
        self.reloads = 0  # for tests

    def keys_for(self, kid: str) -> list[Key]:
        """The keys to verify a token naming `kid` ("" for none) with, after reloading the file when it is due."""
        now = self.clock()
        if now - self._checked >= self.check_seconds:
            self._checked = now
            if self._stat() != self._stamp:
                self._reload()
        if kid and all(key_id != kid for key_id, _key, _alg in self.keys) and now - self._forced >= self.unknown_kid_seconds:
            self._forced = self._checked = now
            self._reload()
        return self.keys

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size, found.st_ino

    def _reload(self) -> None:
        self._stamp = self._stat()  # before reading: a write after the read is seen at the next check
        try:
            keys = read_jwks(self.path)
        except Exception as error:  # noqa: BLE001 - any unreadable file keeps the keys in use
            log.warning("JWKS file %s could not be read again (%s); the keys loaded before stay in use", self.path, error)
            return
        self.reloads += 1
        if {(kid, alg) for kid, _key, alg in keys} != {(kid, alg) for kid, _key, alg in self.keys}:
            log.info("JWKS file %s reloaded: key ids %s", self.path, sorted(kid for kid, _key, _alg in keys))
        self.keys = keys
