"""A thread-safe job queue that takes turns between clients.

Krita, GIMP and Figma may all be connected at once: one user queuing a batch of twenty must not
starve another, so jobs are taken round-robin across owners, first-in-first-out within one owner.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Generic, Protocol, TypeVar


class Owned(Protocol):
    @property
    def owner(self) -> str: ...


T = TypeVar("T", bound=Owned)


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._by_owner: OrderedDict[str, deque[T]] = OrderedDict()
        self._ready = threading.Condition()
        self._closed = False

    def put(self, item: T) -> None:
        with self._ready:
            self._by_owner.setdefault(item.owner, deque()).append(item)
            self._ready.notify()

    def take(self, timeout: float | None = None) -> T | None:
        """The next item in turn, blocking up to ``timeout``; None on timeout or when closed."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._closed or bool(self._by_owner), timeout):
                return None
            if self._closed:
                return None
            owner, items = next(iter(self._by_owner.items()))
            item = items.popleft()
            del self._by_owner[owner]
            if items:
                self._by_owner[owner] = items  # re-inserted at the end: the owner's turn is over
            return item

    def remove(self, item: T) -> bool:
        with self._ready:
            items = self._by_owner.get(item.owner)
            if items is None or item not in items:
                return False
            items.remove(item)
            if not items:
                del self._by_owner[item.owner]
            return True

    def order(self) -> list[T]:
        """Items in the order they will be taken."""
        with self._ready:
            queues = [list(items) for items in self._by_owner.values()]
        ordered: list[T] = []
        for depth in range(max((len(q) for q in queues), default=0)):
            ordered.extend(q[depth] for q in queues if depth < len(q))
        return ordered

    def __len__(self) -> int:
        with self._ready:
            return sum(len(items) for items in self._by_owner.values())

    def close(self) -> list[T]:
        """Wake every taker with None and hand back what was still queued."""
        with self._ready:
            self._closed = True
            left = [item for items in self._by_owner.values() for item in items]
            self._by_owner.clear()
            self._ready.notify_all()
            return left
