"""One object per process, for what must not cross a fork (threads, sockets, gRPC channels, file descriptors).

Celery's prefork pool forks its children after the worker imported
everything: an object made in the parent would be shared, half-working, by
every child. `PerProcess` makes its object on first use in each process;
`os.register_at_fork` drops the parent's copy in a new child, so the child
makes its own (no pid check on every use).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._make()
                value = self._value
        return value

    def peek(self) -> T | None:
        """This process's object if it was made, without making it."""
        return self._value

    def _forget(self) -> None:
        self._value = None
        self._lock = threading.Lock()
