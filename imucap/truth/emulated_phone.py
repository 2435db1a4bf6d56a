"""An emulated iPhone running Live Link Face: a known blendshape sequence sent as packets.

It stands in for the phone in tests and demos (``imucap emulate --phone``), with the faults a
real phone on Wi-Fi has: its own clock (an offset and a drift against the host's), a latency
between the face moving and the packet leaving, and jitter on top. :attr:`EmulatedPhone.sent`
keeps, for every frame, the timecode written and the host time the face was captured: the
truth a synchronisation test checks against.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from imucap.sinks.livelink import DEFAULT_PORT, encode_packet, rate_fraction


class EmulatedPhone:
    """Sends Live Link Face packets of ``face(host_time_s) -> (52,) weights``.

    The phone captures a frame every ``1/fps`` seconds of its own clock. Frame ``k`` is
    captured at host time ``h_k``, stamped with timecode ``clock_offset_s + k / fps`` (phone
    clock), and sent at ``h_k + latency_s + jitter`` (jitter exponential with mean
    ``jitter_s``; packets stay in order, as on one UDP flow).

    Args:
        face: The face at a host time (the emulated array's content at that moment).
        host: Where to send.
        port: UDP port.
        fps: The phone's frame rate.
        latency_s: Capture-to-send delay.
        clock_offset_s: The phone's clock when it starts.
        clock_drift_ppm: How much faster the phone's clock runs than the host's.
        jitter_s: Mean extra random delay per packet.
        subject: Live Link subject name.
        device_id: Live Link device id.
        seed: Seed of the jitter.
    """

    def __init__(self, face: Callable[[float], np.ndarray], *, host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT, fps: float = 60.0, latency_s: float = 0.05,
                 clock_offset_s: float = 1000.0, clock_drift_ppm: float = 0.0,
                 jitter_s: float = 0.002, subject: str = "iPhone", device_id: str = "emulated",
                 seed: int = 0) -> None:
        self.face = face
        self.address = (host, port)
        self.fps = fps
        self.rate = rate_fraction(fps)
        self.latency_s = latency_s
        self.clock_offset_s = clock_offset_s
        self.clock_drift_ppm = clock_drift_ppm
        self.jitter_s = jitter_s
        self.subject = subject
        self.device_id = device_id
        self._rng = np.random.default_rng(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.start_host_s = float("nan")
        #: ``(timecode_s, capture_host_s)`` of every frame sent.
        self.sent: list[tuple[float, float]] = []
        self.errors = 0

    def capture_time(self, timecode_s: float | np.ndarray) -> float | np.ndarray:
        """The host time at which the frame stamped ``timecode_s`` was captured (the truth)."""
        return self.start_host_s + (np.asarray(timecode_s) - self.clock_offset_s) / (
            1.0 + self.clock_drift_ppm * 1e-6)

    def start(self) -> EmulatedPhone:
        import socket

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.start_host_s = time.monotonic() + 0.05
        self._thread = threading.Thread(target=self._run, name="imucap-emulated-phone",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self._sock.close()

    def __enter__(self) -> EmulatedPhone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        k = 0
        period = 1.0 / self.fps / (1.0 + self.clock_drift_ppm * 1e-6)
        num, den = self.rate
        while not self._stop.is_set():
            capture = self.start_host_s + k * period
            send_at = capture + self.latency_s + float(self._rng.exponential(self.jitter_s)) \
                if self.jitter_s > 0 else capture + self.latency_s
            wait = send_at - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            weights = np.clip(np.asarray(self.face(capture), np.float32), 0.0, 1.0)
            # The timecode as the phone writes it: frame number and sub-frame at its rate.
            timecode = self.clock_offset_s + k / self.fps
            frames = timecode * num / den
            number = int(np.floor(frames))
            packet = encode_packet(weights, frame_number=number, subframe=frames - number,
                                   rate=self.rate, subject=self.subject,
                                   device_id=self.device_id)
            try:
                self._sock.sendto(packet, self.address)
            except OSError:
                self.errors += 1
            self.sent.append((timecode, capture))
            k += 1
