"""Frames through the Bluetooth LE transport, against a virtual array on bumble's stack.

The ``ble:`` device (bleak's public API, the shared BLE event loop, ProtocolDevice) reads an
emulated array served as a GATT peripheral on the virtual radio of
:mod:`imucap.firmware_bridge.emulator.ble`, at ATT_MTU 247 and at 23. Everything runs in this
process: the array, both Bluetooth stacks (peripheral and central, HCI packets and ATT PDUs),
the bleak backend and the host, so the CPU time per frame is the whole chain's, not the host's
alone. The virtual link has no radio timing, so these are the software's limits, not
Bluetooth's (PROTOCOL.md section 5 has the air budget).

Prints decoded frames/s and samples/s, the notifications/s the array sent, loss, the backlog
(frames the array had written but the host had not decoded when measuring stopped: where the
chain cannot keep up, it grows in the stacks' queues) and CPU milliseconds per decoded frame.
"""

from __future__ import annotations

import argparse
import os
import time

from imucap.devices.ble import BleConfig, BleDevice
from imucap.firmware_bridge.emulator import EmulatorConfig
from imucap.firmware_bridge.emulator.ble import VirtualArrayConfig, VirtualRadio
from imucap.firmware_bridge.sites import site_preset


def measure(mtu: int, rate_hz: int, samples_per_frame: int, preset: str,
            seconds: float) -> dict[str, float]:
    with VirtualRadio(central_mtu=mtu) as radio:
        virtual = radio.add_array(
            EmulatorConfig(sites=site_preset(preset), rate_hz=rate_hz,
                           samples_per_frame=samples_per_frame),
            VirtualArrayConfig(name="imucap-bench"))
        with BleDevice(BleConfig(target="imucap-bench", backend=radio)) as dev:
            dev.read(timeout_s=3.0)
            time.sleep(0.5)
            while True:  # start from an empty queue
                try:
                    dev.read(timeout_s=0)
                except TimeoutError:
                    break
            stats0, notes0 = dev.stats(), virtual.report.notifications
            cpu0, wall0 = time.process_time(), time.monotonic()
            while time.monotonic() - wall0 < seconds:
                try:
                    dev.read(timeout_s=0.5)
                except TimeoutError:
                    pass
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            stats = dev.stats()
            notes = virtual.report.notifications - notes0
            # Frames the array has written that the host has not decoded yet (it counts
            # every SAMPLES frame since it connected; the virtual link loses none).
            backlog = virtual.array.report.frames_sent - stats.frames
            negotiated = dev.mtu
    frames = stats.frames - stats0.frames
    return {
        "mtu": negotiated,
        "frames_per_s": frames / wall,
        "samples_per_s": (stats.samples - stats0.samples) / wall,
        "notifications_per_s": notes / wall,
        "lost": stats.samples_lost - stats0.samples_lost,
        "bad": stats.bad_frames - stats0.bad_frames,
        "backlog": backlog,
        "cpu_ms_per_frame": 1e3 * cpu / max(frames, 1),
        "cpu_percent": 100 * cpu / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per row")
    parser.add_argument("--rate-hz", type=int, default=1000, help="the array's sample rate")
    parser.add_argument("--preset", default="imusic11", help="site preset (sensor count)")
    parser.add_argument("--samples-per-frame", type=int, nargs="+", default=[1, 10],
                        help="batchings to measure")
    parser.add_argument("--mtu", type=int, nargs="+", default=[247, 23],
                        help="ATT_MTU values the central asks for")
    args = parser.parse_args()
    sensors = len(site_preset(args.preset))
    print(f"imucap BLE transport through the virtual radio (bumble), {sensors} sensors x "
          f"{args.rate_hz} Hz, {args.seconds:g} s per row ({os.cpu_count()} cores; array, both "
          f"Bluetooth stacks and host in this process)")
    print(f"{'MTU':>4}{'samples/frame':>15}{'frames/s':>10}{'samples/s':>11}{'notif/s':>9}"
          f"{'lost':>6}{'bad':>5}{'backlog':>9}{'CPU ms/frame':>14}{'CPU %':>7}")
    for mtu in args.mtu:
        for spf in args.samples_per_frame:
            r = measure(mtu, args.rate_hz, spf, args.preset, args.seconds)
            print(f"{r['mtu']:>4}{spf:>15}{r['frames_per_s']:10.0f}{r['samples_per_s']:11.0f}"
                  f"{r['notifications_per_s']:9.0f}{r['lost']:6d}{r['bad']:5d}"
                  f"{r['backlog']:9d}{r['cpu_ms_per_frame']:14.3f}{r['cpu_percent']:7.0f}")


if __name__ == "__main__":
    main()
