"""A device that speaks imucap protocol v1 over any byte link: handshake, stream, reconnect.

One reader thread owns the link. It decodes frames, keeps the loss accounting (sequence gaps,
timestamp gaps, damaged frames, stalls), refines the device-to-host clock mapping from frame
arrivals and PING/PONG probes, converts samples to SI units and hands frames to
:class:`~imucap.devices.base.ImuDevice`. When the link is lost it reconnects with exponential
backoff and repeats the handshake; if the device restarted (new boot id) the clock mapping
starts afresh.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from imucap.clock import ClockMapper
from imucap.errors import DeviceDisconnectedError, DeviceError, HandshakeError, ImucapError
from imucap.firmware_bridge.codec import FrameDecoder, Packet, encode_frame
from imucap.firmware_bridge.protocol import (
    Ack,
    AckStatus,
    Content,
    DeviceInfo,
    GetInfo,
    Log,
    Ping,
    Pong,
    Samples,
    SetRate,
    Start,
    Stop,
    check_version,
)
from imucap.frames import ImuFrame

from .base import DeviceConfig, ImuDevice, StreamStats
from .links import Link, LinkLost
from .reorder import SeqReorder

log = logging.getLogger(__name__)
_SENSOR_BITS = np.arange(16)
_SAMPLE_INDEX = np.arange(256, dtype=np.int64)


class ProtocolDevice(ImuDevice):
    """An IMU array speaking protocol v1 over a :class:`~imucap.devices.links.Link`.

    Args:
        config: Stream settings.
        make_link: Builds a fresh, unopened link (called again for every reconnection).
    """

    type_name = "protocol"

    def __init__(self, config: DeviceConfig, make_link: Callable[[], Link]) -> None:
        super().__init__(config)
        self._make_link = make_link
        self._link: Link | None = None
        self._link_name = make_link().description
        self._write_lock = threading.Lock()
        self._decoder = FrameDecoder()
        self._clock = ClockMapper()
        self._info: DeviceInfo | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._state = "disconnected"
        self._cmd_seq = itertools.count()
        self._nonce = itertools.count(1)
        self._pings: dict[int, float] = {}
        self._last_ping_s = 0.0
        self._streaming_since = 0.0
        self._backlog: list[Packet] = []  # packets read during a handshake after its answer
        self._reorder: SeqReorder | None = None  # for links that may reorder (datagrams)
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._c = dict(frames=0, samples=0, seq_gaps=0, frames_lost=0, samples_lost=0,
                       out_of_order=0, stalls=0, reconnects=0, reconnect_attempts=0)
        self._last_seq: int | None = None
        self._next_t0_us: int | None = None
        self._last_rx: float | None = None
        self._sensor_samples = np.zeros(16, dtype=np.int64)
        self._mask_samples: dict[int, int] = {}  # samples seen per sensor_ok mask since a tick
        self._rate_mark = (time.monotonic(), 0, 0, 0, self._sensor_samples.copy())
        self._rates = (0.0, 0.0, 0.0, ())
        self._last_error = ""

    # ------------------------------------------------------------------ public

    @property
    def name(self) -> str:
        return self._link_name

    @property
    def info(self) -> DeviceInfo | None:
        return self._info

    @property
    def is_connected(self) -> bool:
        return self._state in ("streaming", "reconnecting")

    @property
    def state(self) -> str:
        """``disconnected``, ``connecting``, ``streaming``, ``reconnecting`` or ``failed``."""
        return self._state

    @property
    def clock(self) -> ClockMapper:
        """The current device-to-host clock mapping."""
        return self._clock

    def connect(self) -> None:
        if self._thread is not None:
            raise DeviceError(f"{self.name} is already connected")
        self._state = "connecting"
        self._failure = None
        self._stopping.clear()
        self._reset_counters()
        self._reorder = None
        try:
            self._link = self._open_and_handshake()
        except BaseException:
            self._state = "disconnected"
            raise
        self._state = "streaming"
        self._thread = threading.Thread(target=self._run, name=f"imucap-{self.name}",
                                        daemon=True)
        self._thread.start()

    def disconnect(self) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)
        link, self._link = self._link, None
        if link is not None:
            try:
                self._send(Stop(), link)
            except LinkLost:
                pass
            link.close()
        if self._state != "failed":
            self._state = "disconnected"
        self._wake_readers()

    def stats(self) -> StreamStats:
        d = self._decoder.counters
        c = self._c
        fps, sps, bps, sensor_rates = self._rates
        rtt = self._clock.best_rtt_s
        ro = self._reorder
        out_of_order = c["out_of_order"] + (ro.reordered + ro.late if ro else 0)
        return StreamStats(
            state=self._state, frames=c["frames"], samples=c["samples"], bytes=d.bytes_in,
            frames_per_s=fps, samples_per_s=sps, bytes_per_s=bps, sensor_rates_hz=sensor_rates,
            crc_errors=d.crc_errors, cobs_errors=d.cobs_errors, short_frames=d.short_frames,
            oversize_frames=d.oversize_frames, payload_errors=d.payload_errors,
            bad_frames=d.bad_frames, bytes_discarded=d.bytes_discarded, resyncs=d.resyncs,
            unknown_types=d.unknown_types, seq_gaps=c["seq_gaps"],
            frames_lost=c["frames_lost"], samples_lost=c["samples_lost"],
            out_of_order=out_of_order, duplicates=ro.duplicates if ro else 0,
            stalls=c["stalls"], reconnects=c["reconnects"],
            reconnect_attempts=c["reconnect_attempts"], queue_drops=self._queue_drops,
            clock_offset_s=self._clock.offset_s(), clock_drift_ppm=self._clock.drift_ppm,
            clock_rtt_ms=None if rtt is None else rtt * 1e3, clock_source=self._clock.source,
            last_error=self._last_error,
        )

    # ------------------------------------------------------------------ handshake

    def _send(self, msg, link: Link | None = None) -> int:
        link = link or self._link
        if link is None:
            raise LinkLost("not connected")
        seq = next(self._cmd_seq) & 0xFFFF
        with self._write_lock:
            link.write(encode_frame(msg, seq))
        return seq

    def _open_and_handshake(self) -> Link:
        link = self._make_link()
        link.open()
        self._link_name = link.description
        window = getattr(link, "reorder_window_s", None)
        if window and self._reorder is None:
            self._reorder = SeqReorder(window)
        try:
            self._handshake(link)
        except BaseException:
            link.close()
            raise
        return link

    def _await(self, link: Link, want: Callable[[Packet], bool], what: str,
                resend: Callable[[], None] | None = None) -> Packet:
        """Read until a packet satisfies ``want``, re-sending every 0.5 s; else HandshakeError."""
        timeout_s = self.config.handshake_timeout_s
        start = time.monotonic()
        bytes_before = self._decoder.counters.bytes_in
        next_resend = start + 0.5
        early: list[Packet] = []  # not the answer; kept if they turn out to follow it
        while True:
            now = time.monotonic()
            if now - start > timeout_s:
                seen = self._decoder.counters.bytes_in - bytes_before
                if seen == 0:
                    raise HandshakeError(
                        f"nothing answered on {self.name} within {timeout_s:g} s ({what}): is "
                        f"the imucap firmware running on it? 'imucap devices' lists ports")
                raise HandshakeError(
                    f"{seen} bytes arrived on {self.name} within {timeout_s:g} s but no "
                    f"{what}: is this an imucap device, at the firmware's baud rate?")
            if resend is not None and now >= next_resend:
                resend()
                next_resend = now + 0.5
            if self._backlog:
                packets, self._backlog = self._backlog, []
            else:
                try:
                    data = link.read(0.05)
                except LinkLost as exc:
                    raise DeviceError(
                        f"{self.name} went away during the handshake: {exc}") from None
                packets = self._decoder.feed(data)
                self._decoder.check_peer_version()
            for i, packet in enumerate(packets):
                self._last_seq = packet.seq
                if isinstance(packet.message, DeviceInfo):
                    self._accept_info(packet.message)
                if want(packet):
                    # What came after the answer belongs to the stream; so do frames that a
                    # datagram link delivered before it although the device sent them later.
                    later = [p for p in early if 0 < (p.seq - packet.seq) & 0xFFFF < 0x8000]
                    self._backlog = later + packets[i + 1:]
                    if later:
                        self._c["out_of_order"] += 1  # the answer came after a later frame
                    self._last_seq = packet.seq
                    return packet
                if isinstance(packet.message, Samples) and len(early) < 64:
                    early.append(packet)

    def _accept_info(self, info: DeviceInfo) -> None:
        check_version(info.proto_major, info.proto_minor)
        if self._info is not None and info.boot_id != self._info.boot_id:
            log.info("%s restarted (boot id %08x -> %08x)", self.name, self._info.boot_id,
                     info.boot_id)
            self._clock.reset()
            self._next_t0_us = None
        if self._info is None or info.boot_id != self._info.boot_id:
            self._pings.clear()
        self._info = info
        self._ok_masks: dict[int, np.ndarray] = {}
        self._scale6 = np.array([info.accel_scale] * 3 + [info.gyro_scale] * 3, np.float32)

    def _handshake(self, link: Link) -> None:
        self._decoder.reset()
        self._backlog = []
        self._last_seq = None
        self._send(GetInfo(), link)
        self._await(link, lambda p: isinstance(p.message, DeviceInfo), "DEVICE_INFO answer",
                    resend=lambda: self._send(GetInfo(), link))
        cfg = self.config
        if cfg.rate_hz and (cfg.rate_hz != self._info.rate_hz or (
                cfg.samples_per_frame and cfg.samples_per_frame != self._info.samples_per_frame)):
            seq = self._send(SetRate(cfg.rate_hz, cfg.samples_per_frame), link)
            ack = self._await(link, lambda p: isinstance(p.message, Ack)
                              and p.message.command_seq == seq, "answer to SET_RATE").message
            if ack.status != AckStatus.OK:
                raise DeviceError(f"{self.name} refused the rate {cfg.rate_hz} Hz "
                                  f"(status {ack.status}): ask for a rate it supports")
            self._await(link, lambda p: isinstance(p.message, DeviceInfo)
                        and p.message.rate_hz == cfg.rate_hz, "DEVICE_INFO after SET_RATE")
        seq = self._send(Start(), link)
        self._await(link, lambda p: isinstance(p.message, Ack) and p.message.command_seq == seq,
                    "answer to START")
        self._last_rx = None  # stalls are measured between arrivals of the stream itself
        self._streaming_since = time.monotonic()  # the silence watchdog runs from here
        if self._reorder is not None:
            self._reorder.reset((self._last_seq + 1) & 0xFFFF, self._info.boot_id)

    # ------------------------------------------------------------------ reader thread

    def _run(self) -> None:
        next_ping = time.monotonic() + 0.1
        next_tick = time.monotonic() + 1.0
        try:
            while not self._stopping.is_set():
                link = self._link
                now = time.monotonic()
                try:
                    wait = 0.05
                    if self._reorder is not None and self._reorder.pending:
                        wait = min(wait, self._reorder.due_in_s(now))
                    data = b"" if self._backlog else link.read(wait)
                    now = time.monotonic()
                    if not data and self._reorder is not None and self._reorder.pending:
                        self._on_packets(self._reorder.due(now), now)
                    if data or self._backlog:
                        self._on_bytes(data, now)
                        if self.config.read_interval_s and not (
                                self._pings and now - self._last_ping_s < 0.1):
                            # Let a few frames gather: far fewer wake-ups at high frame rates.
                            # Not while a PONG is due: its arrival time must be read promptly.
                            time.sleep(self.config.read_interval_s)
                    elif now - (self._last_rx or self._streaming_since) > \
                            self.config.silence_timeout_s:
                        raise LinkLost(f"no data for {self.config.silence_timeout_s:g} s")
                    if self.config.ping_interval_s and now >= next_ping:
                        self._ping(link)
                        next_ping = now + self.config.ping_interval_s
                except LinkLost as exc:
                    if self._stopping.is_set():
                        break
                    self._reconnect(str(exc))
                    next_ping = time.monotonic() + 0.1
                if now >= next_tick:
                    self._tick(now)
                    next_tick = now + 1.0
        except ImucapError as exc:
            self._last_error = str(exc)
            self._state = "failed"
            self._fail(exc)
        except BaseException as exc:  # a bug: keep it visible to readers and in the log
            log.exception("reader thread of %s crashed", self.name)
            self._state = "failed"
            self._fail(exc)

    def _ping(self, link: Link) -> None:
        nonce = next(self._nonce) & 0xFFFFFFFF
        if len(self._pings) >= 16:
            self._pings.pop(next(iter(self._pings)))
        now = time.monotonic()  # the send time itself: the round trip is measured from here
        self._pings[nonce] = now
        self._last_ping_s = now
        self._send(Ping(nonce, int(now * 1e6)), link)

    def _on_bytes(self, data: bytes, now: float) -> None:
        if self._last_rx is not None and now - self._last_rx > self.config.stall_threshold_s:
            self._c["stalls"] += 1
        self._last_rx = now
        packets = self._decoder.feed(data)
        if self._backlog:
            packets, self._backlog = self._backlog + packets, []
        if self._reorder is not None:
            self._on_packets(self._reorder.push(packets, now), now)
        else:
            self._on_packets([(p, now) for p in packets], now)
        self._decoder.check_peer_version()

    def _on_packets(self, packets: list[tuple[Packet, float]], now: float) -> None:
        """Account, batch and deliver packets in order; each comes with its arrival time."""
        batch: list[Samples] = []  # consecutive SAMPLES of this read, turned into one frame
        batch_seq = batch_lost = 0
        for packet, arrived in packets:
            lost = self._account_seq(packet.seq)
            msg = packet.message
            if isinstance(msg, Samples):
                if not self._accept_samples(msg):
                    continue
                if batch and (lost or not self._continues(batch[-1], msg)):
                    self._emit(batch, batch_seq, batch_lost, now)
                    batch = []
                if not batch:
                    batch_seq, batch_lost = packet.seq, lost
                batch.append(msg)
                continue
            if batch:  # keep frames and other messages in arrival order
                self._emit(batch, batch_seq, batch_lost, now)
                batch = []
            if isinstance(msg, Pong):
                t1 = self._pings.pop(msg.nonce, None)
                if t1 is not None:
                    self._clock.add_probe(t1, msg.device_rx_us, msg.device_tx_us, arrived)
            elif isinstance(msg, DeviceInfo):
                self._accept_info(msg)
                if not msg.streaming:
                    # It restarted, or gave this host up: start the session again.
                    raise LinkLost("the device stopped streaming")
            elif isinstance(msg, Log):
                log.log(10 + 10 * min(msg.level, 3), "%s: %s", self.name, msg.text)
        if batch:
            self._emit(batch, batch_seq, batch_lost, now)

    def _account_seq(self, seq: int) -> int:
        last = self._last_seq
        self._last_seq = seq
        if last is None:
            return 0
        gap = (seq - last - 1) & 0xFFFF
        if gap == 0:
            return 0
        if gap >= 0x8000:  # went backwards: a duplicate or a reordered frame
            self._c["out_of_order"] += 1
            return 0
        self._c["seq_gaps"] += 1
        self._c["frames_lost"] += gap
        return gap

    def _accept_samples(self, msg: Samples) -> bool:
        """Loss accounting by timestamps; False for a frame that does not fit the device."""
        if msg.data.shape[1] != self._info.sensor_count:
            # The device changed without telling; ask it what it is now.
            self._decoder.counters.payload_errors += 1
            self._send(GetInfo())
            return False
        n = msg.data.shape[0]
        if self._next_t0_us is not None and msg.dt_us:
            missing = round((msg.t0_us - self._next_t0_us) / msg.dt_us)
            if missing > 0:
                self._c["samples_lost"] += missing
        self._next_t0_us = msg.t0_us + n * msg.dt_us
        self._c["frames"] += 1
        self._c["samples"] += n
        self._mask_samples[msg.sensor_ok] = self._mask_samples.get(msg.sensor_ok, 0) + n
        return True

    @staticmethod
    def _continues(prev: Samples, msg: Samples) -> bool:
        return (msg.dt_us == prev.dt_us and msg.content == prev.content
                and msg.sensor_ok == prev.sensor_ok
                and msg.t0_us == prev.t0_us + prev.data.shape[0] * prev.dt_us)

    def _emit(self, batch: list[Samples], seq: int, lost: int, now: float) -> None:
        """Turn consecutive SAMPLES into one :class:`ImuFrame` in SI units and deliver it."""
        info = self._info
        first = batch[0]
        data = first.data if len(batch) == 1 else np.concatenate([m.data for m in batch])
        n, s = data.shape[0], data.shape[1]
        t_us = first.t0_us + first.dt_us * _SAMPLE_INDEX[:n] if n <= 256 else \
            first.t0_us + first.dt_us * np.arange(n, dtype=np.int64)
        self._clock.add_arrival(int(t_us[-1]), now)
        ok = self._ok_masks.get(first.sensor_ok)
        if ok is None:
            ok = (first.sensor_ok >> _SENSOR_BITS[:s]) & 1 == 1
            if len(self._ok_masks) < 64:
                self._ok_masks[first.sensor_ok] = ok
        content = first.content
        if content & 3 == 3:
            # Accelerometer and gyroscope lead every record: scale both in one product.
            si = data[:, :, :6] * self._scale6
            accel, gyro = si[:, :, :3], si[:, :, 3:]
        else:
            merged = Samples(first.t0_us, first.dt_us, content, first.sensor_ok, data)
            a, g = merged.block(Content.ACCEL), merged.block(Content.GYRO)
            accel = a * np.float32(info.accel_scale) if a is not None else \
                np.full((n, s, 3), np.nan, np.float32)
            gyro = g * np.float32(info.gyro_scale) if g is not None else \
                np.full((n, s, 3), np.nan, np.float32)
        mag = quat = None
        if content & 12:
            merged = Samples(first.t0_us, first.dt_us, content, first.sensor_ok, data)
            m, q = merged.block(Content.MAG), merged.block(Content.QUAT)
            mag = None if m is None else m * np.float32(info.mag_scale)
            quat = None if q is None else q * np.float32(1.0 / 16384)
        self._deliver(ImuFrame(
            seq=seq, boot_id=info.boot_id, device_time_us=t_us,
            host_time_s=self._clock.to_host(t_us), arrival_time_s=now, accel=accel, gyro=gyro,
            mag=mag, quat=quat, sensor_ok=ok, sites=info.sites, lost_before=lost,
            wire_frames=len(batch),
        ))

    def _tick(self, now: float) -> None:
        t0, frames0, samples0, bytes0, sensors0 = self._rate_mark
        dt = max(now - t0, 1e-6)
        c = self._c
        nbytes = self._decoder.counters.bytes_in
        count = self._info.sensor_count if self._info else 0
        for mask, samples in self._mask_samples.items():
            self._sensor_samples[:16] += samples * ((mask >> _SENSOR_BITS) & 1)
        self._mask_samples.clear()
        per_sensor = (self._sensor_samples - sensors0)[:count] / dt
        self._rates = ((c["frames"] - frames0) / dt, (c["samples"] - samples0) / dt,
                       (nbytes - bytes0) / dt, tuple(float(r) for r in per_sensor))
        self._rate_mark = (now, c["frames"], c["samples"], nbytes, self._sensor_samples.copy())

    def _reconnect(self, reason: str) -> None:
        log.warning("%s: link lost (%s)", self.name, reason)
        self._last_error = f"link lost: {reason}"
        if self._link is not None:
            self._link.close()
            self._link = None
        if not self.config.reconnect:
            raise DeviceDisconnectedError(f"{self.name} disconnected ({reason})")
        self._state = "reconnecting"
        self._last_rx = None
        self._next_t0_us = None
        start = time.monotonic()
        backoff = 0.05
        while not self._stopping.is_set():
            limit = self.config.reconnect_timeout_s
            if limit is not None and time.monotonic() - start > limit:
                raise DeviceDisconnectedError(
                    f"{self.name} disconnected ({reason}) and did not come back within "
                    f"{limit:g} s: check the cable or power, then connect again")
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, self.config.reconnect_max_backoff_s)
            self._c["reconnect_attempts"] += 1
            try:
                link = self._open_and_handshake()
            except DeviceError as exc:
                self._last_error = str(exc)
                continue
            self._link = link
            self._c["reconnects"] += 1
            self._state = "streaming"
            log.info("%s: reconnected", self.name)
            return
