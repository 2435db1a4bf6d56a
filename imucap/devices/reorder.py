"""Putting frames from a datagram link back in order, and dropping the duplicates.

UDP may lose, duplicate and reorder datagrams. Every frame a device sends carries the next
value of its 16-bit sequence counter (PROTOCOL.md section 1), so the host can repair the order:
a frame that arrives ahead of a missing one waits, for at most ``window_s``, for the gap to
fill. When the gap fills the frames go on in order; when the window passes first, the missing
frames count as lost and the waiting ones go on. A frame whose number was already delivered is
a duplicate and is dropped; one that arrives after its gap was given up is late and is dropped
too (it was already counted as lost).
"""

from __future__ import annotations

from collections import deque

from imucap.firmware_bridge.codec import Packet
from imucap.firmware_bridge.protocol import DeviceInfo


class SeqReorder:
    """Order packets by sequence number within a time window.

    Args:
        window_s: Longest time a packet waits for a missing one before it.
        max_held: Most packets held at once; more release the oldest as if the window passed.

    Attributes:
        reordered: Packets that arrived after later ones, in time to be put back in order.
        duplicates: Packets dropped because their sequence number had already been seen.
        late: Packets dropped because they arrived after their gap was given up.
    """

    def __init__(self, window_s: float = 0.03, max_held: int = 256) -> None:
        self.window_s = window_s
        self.max_held = max_held
        self.reordered = 0
        self.duplicates = 0
        self.late = 0
        self._held: dict[int, tuple[float, Packet]] = {}
        self._next: int | None = None
        self._seen: deque[int] = deque(maxlen=1024)
        self._seen_set: set[int] = set()
        self._boot: int | None = None
        self._newest: int | None = None

    def reset(self, next_seq: int | None = None, boot_id: int | None = None) -> None:
        """Forget everything held; expect ``next_seq`` next (None: whatever comes).

        ``boot_id`` is the device boot whose numbers follow (None: keep the one known).
        """
        if boot_id is not None:
            self._boot = boot_id
        self._held.clear()
        self._next = None if next_seq is None else next_seq & 0xFFFF
        self._newest: int | None = None  # the highest number that arrived
        self._seen.clear()
        self._seen_set.clear()

    @property
    def pending(self) -> bool:
        """Whether packets are waiting for a gap to fill."""
        return bool(self._held)

    def due_in_s(self, now: float) -> float | None:
        """Seconds until the oldest held packet's window passes (None: nothing held)."""
        if not self._held:
            return None
        oldest = min(t for t, _ in self._held.values())
        return max(0.0, oldest + self.window_s - now)

    def _mark_seen(self, seq: int) -> None:
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(seq)
        self._seen_set.add(seq)

    def _release_run(self, out: list[tuple[Packet, float]]) -> None:
        """Release the held packets that continue the sequence without a gap."""
        while self._next in self._held:
            t, packet = self._held.pop(self._next)
            out.append((packet, t))
            self._mark_seen(self._next)
            self._next = (self._next + 1) & 0xFFFF

    def _give_up_gap(self, out: list[tuple[Packet, float]]) -> None:
        """The gap before the first held packet is lost: go on from that packet."""
        first = min(self._held, key=lambda s: (s - self._next) & 0xFFFF)
        self._next = first
        self._release_run(out)

    def push(self, packets: list[Packet], now: float) -> list[tuple[Packet, float]]:
        """Take packets that arrived at ``now``; returns ``(packet, arrival time)`` in order."""
        out: list[tuple[Packet, float]] = []
        for packet in packets:
            seq = packet.seq
            msg = packet.message
            if isinstance(msg, DeviceInfo) and msg.boot_id != self._boot:
                # A device that restarted counts from 0 again: start afresh at its DEVICE_INFO.
                self.reset(seq)
                self._boot = msg.boot_id
            if self._next is None:
                self._next = seq
            if seq in self._seen_set or seq in self._held:
                self.duplicates += 1
                continue
            ahead = (seq - self._next) & 0xFFFF
            if ahead >= 0x8000:
                self.late += 1
                continue
            if self._newest is not None and 0 < (self._newest - seq) & 0xFFFF < 0x8000:
                self.reordered += 1  # a later one came first; it is in time for its place
            else:
                self._newest = seq
            if ahead == 0:
                out.append((packet, now))
                self._mark_seen(seq)
                self._next = (seq + 1) & 0xFFFF
                if self._held:
                    self._release_run(out)
                continue
            self._held[seq] = (now, packet)
            if len(self._held) > self.max_held:
                self._give_up_gap(out)
        if self._held:
            out.extend(self.due(now))
        return out

    def due(self, now: float) -> list[tuple[Packet, float]]:
        """Release what waited longer than the window, giving up the gaps before it."""
        out: list[tuple[Packet, float]] = []
        while self._held and min(t for t, _ in self._held.values()) + self.window_s <= now:
            self._give_up_gap(out)
        return out
