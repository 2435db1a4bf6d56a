"""How the frame stream is cut for links that carry packets: Bluetooth LE and UDP.

PROTOCOL.md sections 5 and 6 are the contract; these functions are its reference, used by the
emulator and checked against the firmware's portable C. The constants are the GATT profile's
UUIDs and the UDP defaults.
"""

from __future__ import annotations

#: The imucap GATT service (PROTOCOL.md section 5).
SERVICE_UUID = "95310001-e026-4a0c-8a12-a68dcdc1c7ff"
#: Notify characteristic: the device's frame stream.
FRAMES_UUID = "95310002-e026-4a0c-8a12-a68dcdc1c7ff"
#: Write characteristic: the host's command stream.
COMMANDS_UUID = "95310003-e026-4a0c-8a12-a68dcdc1c7ff"
#: Bluetooth SIG Device Information service and the strings it carries.
DEVICE_INFORMATION_UUID = "0000180a-0000-1000-8000-00805f9b34fb"
MANUFACTURER_NAME_UUID = "00002a29-0000-1000-8000-00805f9b34fb"
MODEL_NUMBER_UUID = "00002a24-0000-1000-8000-00805f9b34fb"
SERIAL_NUMBER_UUID = "00002a25-0000-1000-8000-00805f9b34fb"
FIRMWARE_REVISION_UUID = "00002a26-0000-1000-8000-00805f9b34fb"

#: ATT_MTU every Bluetooth LE link starts with, and the one the reference firmware offers.
DEFAULT_ATT_MTU = 23
PREFERRED_ATT_MTU = 247
#: Bytes of an ATT notification or write that are not its value.
ATT_HEADER = 3

#: UDP port a host listens on by default, and the largest datagram a device sends (one
#: Ethernet MTU without IP fragmentation) unless one frame alone is larger.
UDP_DEFAULT_PORT = 9000
UDP_MAX_DATAGRAM = 1472
#: A UDP device announces itself this often while no host talks to it, and gives its host up
#: after this long without a command.
UDP_ANNOUNCE_S = 1.0
UDP_HOST_TIMEOUT_S = 5.0


def ble_name(device_id: int) -> str:
    """The default advertised name of a board: ``imucap-`` and the low 16 bits of its id."""
    return f"imucap-{device_id & 0xFFFF:04x}"


def value_size(att_mtu: int) -> int:
    """Bytes of frame stream one notification (or write) carries at this ATT_MTU."""
    if att_mtu < DEFAULT_ATT_MTU:
        raise ValueError(f"ATT_MTU is at least {DEFAULT_ATT_MTU}, got {att_mtu}")
    return att_mtu - ATT_HEADER


def notification_chunks(stream: bytes, att_mtu: int) -> list[bytes]:
    """Cut a burst of the frame stream into notification values (PROTOCOL.md section 5).

    Every value but the last is full; frames share values and continue across them.
    """
    size = value_size(att_mtu)
    return [stream[i:i + size] for i in range(0, len(stream), size)]


def split_frames(stream: bytes) -> list[bytes]:
    """The frames of a stream, each with its 0x00 delimiter; a trailing partial is dropped."""
    return [frame + b"\x00" for frame in stream.split(b"\x00")[:-1] if frame]


def pack_datagrams(stream: bytes, max_size: int = UDP_MAX_DATAGRAM) -> list[bytes]:
    """Pack whole frames of a stream into datagrams of at most ``max_size`` bytes.

    Frames are never split; one larger than ``max_size`` travels alone (PROTOCOL.md section 6).
    """
    out: list[bytes] = []
    datagram = b""
    for frame in split_frames(stream):
        if datagram and len(datagram) + len(frame) > max_size:
            out.append(datagram)
            datagram = b""
        datagram += frame
    if datagram:
        out.append(datagram)
    return out
