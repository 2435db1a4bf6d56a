"""End-to-end latency of a live session: IMU frame arriving → Live Link packet leaving.

An emulated 11-site IMUSIC array at 100 Hz streams through the real device driver; the
shipped checkpoint runs in the streaming engine; a FanOut sends every 60 Hz face frame as a
Live Link Face packet to a receiver on this machine. For each packet: the engine's latency
(from the arrival of the IMU data that completed the frame to the frame's emission) plus the
time from emission to the packet's arrival at the receiver. Prints p50 and p99.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np


def main(duration_s: float = 15.0) -> None:
    import torch

    from imucap.devices import open_device
    from imucap.inference.engine import StreamingEngine
    from imucap.models.pretrained import default_checkpoint
    from imucap.sinks.fanout import FanOut
    from imucap.sinks.livelink import LiveLinkReceiver, LiveLinkSender

    emitted: dict[int, tuple[float, float]] = {}
    with LiveLinkReceiver(port=0, host="127.0.0.1") as receiver, \
            open_device("emulator:imusic11") as device:
        engine = StreamingEngine(default_checkpoint(), tuple(device.info.sites),
                                 accel_range_g=device.info.accel_range_g)
        fan = FanOut([LiveLinkSender("127.0.0.1", receiver.address[1])], rate_hz=60).open()
        packets = []
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            try:
                engine.push(device.read(timeout_s=0.1))
            except TimeoutError:
                continue
            for frame in engine.pull():
                emitted[math.floor(frame.time_s * 60 + 1e-6)] = (time.monotonic(),
                                                                 frame.latency_s)
                fan.send(frame)
            while (p := receiver.read(timeout_s=0)) is not None:
                packets.append(p)
        fan.close()
        while (p := receiver.read(timeout_s=0.2)) is not None:
            packets.append(p)
    total, engine_part, wire = [], [], []
    for p in packets[60:]:  # the first second warms up
        if p.frame_number in emitted and p.arrival_time_s is not None:
            t_emit, lat = emitted[p.frame_number]
            engine_part.append(lat)
            wire.append(p.arrival_time_s - t_emit)
            total.append(lat + p.arrival_time_s - t_emit)
    ms = lambda v, q: 1e3 * float(np.percentile(v, q))  # noqa: E731
    print(f"imucap live latency, emulator:imusic11 100 Hz -> shipped checkpoint -> Live Link "
          f"UDP on localhost, {duration_s:.0f} s, {torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} cores")
    print(f"  {len(total)} packets matched ({len(packets)} received, "
          f"{len(packets) / duration_s:.1f}/s)")
    print(f"  IMU arrival -> Live Link packet received: p50 {ms(total, 50):.1f} ms, "
          f"p99 {ms(total, 99):.1f} ms")
    print(f"    of which engine (arrival -> frame out): p50 {ms(engine_part, 50):.1f} ms, "
          f"p99 {ms(engine_part, 99):.1f} ms; fan-out + UDP: p50 {ms(wire, 50):.2f} ms, "
          f"p99 {ms(wire, 99):.2f} ms")


if __name__ == "__main__":
    main()
