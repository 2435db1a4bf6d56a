"""Device URIs: one scheme for naming a device anywhere in imucap.

=================================  =================================================
``serial:/dev/ttyACM0``            a serial port by path (``COM3`` on Windows)
``serial:303a:1001``               the serial port of the USB device with that VID:PID
``/dev/ttyACM0``                   short for ``serial:/dev/ttyACM0``
``tcp://HOST:PORT``                a device (or ``imucap emulate --tcp``) over TCP
``emulator:[PRESET]``              an in-process emulated array on a pseudo-terminal,
                                   read through the serial driver
``ble:NAME_OR_ADDRESS``            a Bluetooth LE array (``pip install imucap[ble]``)
``udp://0.0.0.0:9000``             a Wi-Fi array sending UDP datagrams to this port
``array:left=URI,right=URI``       several devices merged into one array on one clock
``replay:SESSION.mcap``            a recorded session played back as a live device
=================================  =================================================

Options follow a ``?``, ``&``-separated: stream settings for any device (``rate_hz``,
``samples_per_frame``, ``queue_size``, ``handshake_timeout_s``, ``reconnect``,
``reconnect_timeout_s``, ``silence_timeout_s``, ``stall_threshold_s``, ``ping_interval_s``),
``baud`` and ``serial_number`` for serial ports, and the emulator's own (see
:mod:`imucap.devices.emulated`).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import fields
from urllib.parse import parse_qsl

from imucap.errors import BadDeviceURIError

from .base import DeviceConfig, ImuDevice, device_schemes

_SCHEME = re.compile(r"^([a-z][a-z0-9+]*):(//)?(.*)$")
_VID_PID = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$")


def split_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """``scheme``, ``target`` and options of a device URI."""
    text = uri.strip()
    if not text:
        raise BadDeviceURIError("empty device URI: try serial:/dev/ttyACM0 or emulator:")
    query = ""
    if "?" in text:
        text, query = text.split("?", 1)
    match = _SCHEME.match(text)
    if text in ("emulator",):
        scheme, target = text, ""
    elif match and not re.match(r"^[A-Za-z]:[\\/]", text):
        scheme, target = match.group(1), match.group(3)
    elif text.startswith("/") or re.match(r"^COM\d+$", text, re.IGNORECASE):
        scheme, target = "serial", text
    else:
        raise BadDeviceURIError(
            f"cannot read device URI {uri!r}: use serial:PATH, serial:VID:PID, tcp://HOST:PORT, "
            f"ble:NAME, udp://0.0.0.0:PORT, array:… or emulator:")
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise BadDeviceURIError(f"cannot read the options {query!r} in {uri!r}: "
                                f"write them as ?name=value&name=value") from None
    return scheme, target, params


def parse_vid_pid(target: str) -> tuple[int, int] | None:
    """``(vid, pid)`` if ``target`` reads ``VVVV:PPPP`` in hex, else None."""
    match = _VID_PID.match(target)
    return (int(match.group(1), 16), int(match.group(2), 16)) if match else None


def parse_host_port(target: str, *, scheme: str, default_port: int | None = None
                    ) -> tuple[str, int]:
    """``(host, port)`` from ``HOST:PORT`` (``[v6]:PORT`` too)."""
    match = re.match(r"^\[?([^\]]*?)\]?(?::(\d+))?$", target)
    if not match or not match.group(1) or (match.group(2) is None and default_port is None):
        raise BadDeviceURIError(f"{scheme} device URI needs HOST:PORT, got {target!r}")
    port = int(match.group(2)) if match.group(2) else default_port
    if not 0 < port < 65536:
        raise BadDeviceURIError(f"port {port} is out of range (1 to 65535)")
    return match.group(1), port


def _convert(name: str, value: str, kind: type | str) -> object:
    text = str(kind)
    try:
        if "bool" in text:
            if value.lower() in ("1", "true", "yes", "on", ""):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if "None" in text and value.lower() in ("none", ""):
            return None
        if "int" in text:
            return int(value)
        if "float" in text:
            return float(value)
    except ValueError:
        raise BadDeviceURIError(f"option {name}={value!r} is not a valid {text}") from None
    return value


def take_options(params: dict[str, str], cls: type) -> dict[str, object]:
    """Remove the options that are fields of dataclass ``cls`` and convert them to its types."""
    out = {}
    for f in fields(cls):
        if f.name in params:
            out[f.name] = _convert(f.name, params.pop(f.name), f.type)
    return out


def stream_settings(params: dict[str, str]) -> dict[str, object]:
    """The shared :class:`DeviceConfig` options; any option left over is an error."""
    out = take_options(params, DeviceConfig)
    if params:
        known = ", ".join(f.name for f in fields(DeviceConfig))
        raise BadDeviceURIError(
            f"unknown device option {', '.join(sorted(params))}: known options are {known}")
    return out


#: Schemes whose device is defined outside this package, and the module that registers it.
_LAZY_SCHEMES = {"replay": "imucap.record.replay", "ble": "imucap.devices.ble",
                 "udp": "imucap.devices.udp", "array": "imucap.devices.array"}


def open_device(uri: str) -> ImuDevice:
    """Build (not connect) the device a URI names.

    Raises:
        BadDeviceURIError: The URI or one of its options cannot be understood.
    """
    from . import emulated, serial, tcp  # noqa: F401  (register their schemes)

    if uri.strip().startswith("array:"):
        # Its parts are URIs with options of their own: the array module reads it whole.
        from .array import array_from_uri

        return array_from_uri(uri)
    scheme, target, params = split_uri(uri)
    if scheme in _LAZY_SCHEMES:  # devices that live in a later room register on import
        importlib.import_module(_LAZY_SCHEMES[scheme])
    factories = device_schemes()
    if scheme not in factories:
        known = ", ".join(f"{s}:" for s in sorted(set(factories) | set(_LAZY_SCHEMES)))
        raise BadDeviceURIError(f"unknown device scheme {scheme!r} in {uri!r}: use one of {known}")
    try:
        return factories[scheme](target, params)
    except ValueError as exc:
        raise BadDeviceURIError(f"{uri!r}: {exc}") from None
