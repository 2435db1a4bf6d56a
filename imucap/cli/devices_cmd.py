"""``imucap devices``: the serial ports this machine has, and how to get a virtual array."""

from __future__ import annotations

import argparse

from imucap.devices.links import KNOWN_BOARDS, list_serial_ports


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list serial ports (with USB VID:PID) and device URIs",
                       description="List serial ports with their USB VID:PID, and say how to "
                                   "open one, or start an emulated array.")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
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
