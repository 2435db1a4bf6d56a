"""The USB serial driver: an imucap array on a serial port, opened by path or by USB VID:PID."""

from __future__ import annotations

from dataclasses import dataclass

from .base import DeviceConfig, register_device
from .links import SerialLink
from .protocol_device import ProtocolDevice


@dataclass(kw_only=True)
class SerialConfig(DeviceConfig):
    """Where the serial device is, on top of the shared stream settings.

    Attributes:
        port: Device path (``/dev/ttyACM0``, ``COM3``); None to find the board by USB ids.
        vid: USB vendor id, used when ``port`` is None.
        pid: USB product id, used when ``port`` is None.
        serial_number: Pick the board with this USB serial number among several.
        baudrate: Line rate for UART bridges; USB CDC ignores it.
    """

    port: str | None = None
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    baudrate: int = 921600


class SerialDevice(ProtocolDevice):
    """An imucap array over a serial port (USB CDC or a UART bridge).

    Reconnection after an unplug finds the board again by the same path, or by VID:PID (the
    path may change when it is plugged back in).
    """

    type_name = "serial"

    def __init__(self, config: SerialConfig) -> None:
        if config.port is None and (config.vid is None or config.pid is None):
            raise ValueError("SerialConfig needs a port, or both vid and pid")
        super().__init__(config, lambda: SerialLink(
            config.port, vid=config.vid, pid=config.pid,
            serial_number=config.serial_number, baudrate=config.baudrate))


@register_device("serial")
def _from_uri(target: str, params: dict[str, str]) -> SerialDevice:
    from .uri import parse_vid_pid, stream_settings

    vid_pid = parse_vid_pid(target)
    where = dict(vid=vid_pid[0], pid=vid_pid[1]) if vid_pid else dict(port=target)
    extra = {}
    if "baud" in params:
        extra["baudrate"] = int(params.pop("baud"))
    if "serial_number" in params:
        extra["serial_number"] = params.pop("serial_number")
    return SerialDevice(SerialConfig(**where, **extra, **stream_settings(params)))
