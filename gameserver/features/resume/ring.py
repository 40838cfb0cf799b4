"""What a resumable session keeps for its client: the messages sent and not yet acknowledged (docs/PROTOCOL.md,
"Resume"). Pure data, no asyncio: each entry is ``(seq, format, encoded map)``, bounded by count and bytes."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from gameserver.protocol.codec import Format, decode_json, decode_msgpack, encode_json, encode_msgpack

Entry = tuple[int, Format, bytes]


def encode(message: dict[str, object], fmt: Format) -> bytes:
    """Raises TypeError or ValueError when ``message`` has no ``fmt`` form."""
    return encode_msgpack(message) if fmt is Format.MSGPACK else encode_json(message).encode()


def recode(data: bytes, source: Format, target: Format) -> bytes:
    """``data`` (one map in ``source``) in ``target``: a message kept for a msgpack connection, replayed into a JSON
    one. Raises TypeError or ValueError when it has no ``target`` form (msgpack bytes have no JSON form)."""
    if source is target:
        return data
    message = decode_msgpack(data) if source is Format.MSGPACK else decode_json(data)
    return encode(message, target)


class Ring:
    """The unacknowledged messages of one session, oldest first.

    Args:
        max_count: messages kept at most (``session.resume_buffer``).
        max_bytes: their encoded bytes at most (``session.resume_bytes``).
    """

    __slots__ = ("entries", "size", "max_count", "max_bytes", "evicted")

    def __init__(self, max_count: int, max_bytes: int, entries: list[Entry] | None = None) -> None:
        self.entries: deque[Entry] = deque(entries or ())
        self.size = sum(len(data) for _, _, data in self.entries)
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.evicted = 0  # the highest seq given up to stay in bounds: a client that has less cannot resume

    def add(self, seq: int, fmt: Format, data: bytes) -> bool:
        """Keep one message; False if the ring is now over a bound (the caller evicts or drops the session)."""
        self.entries.append((seq, fmt, data))
        self.size += len(data)
        return len(self.entries) <= self.max_count and self.size <= self.max_bytes

    def evict(self) -> None:
        """Give up the oldest messages until back within the bounds (the client is connected: it most likely has
        them, and its next ack would have freed them)."""
        entries = self.entries
        while entries and (len(entries) > self.max_count or self.size > self.max_bytes):
            seq, _, data = entries.popleft()
            self.size -= len(data)
            self.evicted = seq

    def ack(self, received: int) -> None:
        """The client has every message up to ``received``: free them."""
        entries = self.entries
        while entries and entries[0][0] <= received:
            self.size -= len(entries.popleft()[2])

    def covers(self, received: int) -> bool:
        """Whether everything after ``received`` is still here."""
        return received >= self.evicted

    def after(self, received: int) -> Iterator[Entry]:
        """The messages after ``received``, in order."""
        for entry in self.entries:
            if entry[0] > received:
                yield entry

    def __len__(self) -> int:
        return len(self.entries)
