"""``imucap devices``: the serial ports this machine has, Bluetooth LE arrays in range (``--ble``),
and how to get a virtual array."""

from __future__ import annotations

import argparse

from imucap.devices.links import KNOWN_BOARDS, list_serial_ports
from imucap.errors import ImucapError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list serial ports (with USB VID:PID), Bluetooth LE arrays "
                                       "(--ble) and device URIs",
                       description="List serial ports with their USB VID:PID, and say how to "
                                   "open one, or start an emulated array. With --ble, scan for "
                                   "Bluetooth LE arrays advertising the imucap service instead "
                                   "(IMUCAP_BLE_VIRTUAL=NAME[:PRESET],... lists virtual ones).")
    p.add_argument("--ble", action="store_true",
                   help="scan for Bluetooth LE arrays: name, address and signal strength")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="how long to scan with --ble, in seconds (default 5)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.ble:
        return run_ble(args.timeout)
    ports = list_serial_ports()
    if ports:
        print(f"{'port':<24} {'VID:PID':<10} {'serial number':<18} description")
        for p in ports:
            note = KNOWN_BOARDS.get((p.vid, p.pid), "")
            desc = p.description + (f"  [{note}]" if note else "")
            print(f"{p.device:<24} {p.vid_pid or '-':<10} {p.serial_number or '-':<18} {desc}")
        print()
        print("Open one with:  imucap stream --device serial:PORT --print")
        print("      or by id: imucap stream --device serial:VID:PID --print")
    else:
        print("No serial ports found.")
    print("No hardware? Try:  imucap stream --device emulator:imusic11 --print")
    print("     or serve one: imucap emulate   (then open the port it prints)")
    return 0


def run_ble(timeout_s: float) -> int:
    """Scan for Bluetooth LE arrays and print them; a missing radio is a one-line error."""
    from imucap.devices.ble import scan_arrays

    if not 0 < timeout_s <= 120:
        raise ImucapError(f"--timeout must be between 0 and 120 s, got {timeout_s:g}")
    arrays = scan_arrays(timeout_s)
    if not arrays:
        print(f"No Bluetooth LE array advertising the imucap service in range (scanned "
              f"{timeout_s:g} s): is it switched on, and not connected to another computer?")
        print("No hardware? Try:  IMUCAP_BLE_VIRTUAL=imucap-demo imucap devices --ble")
        return 0
    print(f"{'name':<24} {'address':<38} signal")
    for a in arrays:
        signal = "-" if a.rssi is None else f"{a.rssi} dBm"
        print(f"{a.name or '(no name)':<24} {a.address:<38} {signal}")
    print()
    print("Open one with:  imucap stream --device ble:NAME --print")
    return 0
