"""Devices and transports: open a face-IMU array by URI and read its frames.

>>> from imucap.devices import open_device
>>> with open_device("emulator:imusic11") as dev:   # doctest: +SKIP
...     frame = dev.read(timeout_s=2.0)
"""

from .base import DeviceConfig, ImuDevice, StreamStats, register_device
from .links import SerialPortInfo, list_serial_ports
from .uri import open_device, split_uri

__all__ = [
    "DeviceConfig",
    "ImuDevice",
    "SerialPortInfo",
    "StreamStats",
    "list_serial_ports",
    "open_device",
    "register_device",
    "split_uri",
]
