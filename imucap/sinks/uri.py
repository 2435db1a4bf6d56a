"""Sink URIs: name where output frames go in one string.

===================================  ===========================================================
``livelink://HOST[:PORT]``           Live Link Face UDP to Unreal (port 11111); options
                                     ``subject``, ``device_id``, ``fps``
``vmc://HOST[:PORT]``                VMC protocol over OSC/UDP (port 39539)
``lsl`` or ``lsl://NAME``            Lab Streaming Layer outlets named NAME (``imucap``);
                                     options ``rate_hz``, ``source_id``, ``action_units``,
                                     ``presence_threshold``
===================================  ===========================================================

Options follow a ``?``, ``&``-separated: ``livelink://192.168.1.20?subject=face``. A missing
host means this machine (127.0.0.1); IPv6 addresses go in brackets (``vmc://[::1]:39539``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl

from .base import Sink, SinkError

__all__ = ["SINK_SCHEMES", "open_sink", "sink_from_uri", "split_sink_uri"]

#: Each scheme and how it is written.
SINK_SCHEMES: Mapping[str, str] = {
    "livelink": "livelink://HOST:PORT",
    "vmc": "vmc://HOST:PORT",
    "lsl": "lsl://NAME",
}

_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)(?:://(.*))?$", re.DOTALL)
_HOST_PORT = re.compile(r"^(?:\[([^\]]*)\]|([^:\[\]/]*))(?::([^/]*))?$")
_DEFAULT_HOST = "127.0.0.1"


def _known() -> str:
    return ", ".join(SINK_SCHEMES.values())


def split_sink_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """``(scheme, target, options)`` of a sink URI.

    Raises:
        SinkError: If the URI cannot be read, or its scheme is not known.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise SinkError(f"empty sink URI: use one of {_known()}")
    text, _, query = uri.strip().partition("?")
    match = _URI.match(text)
    if not match or match.group(1).lower() not in SINK_SCHEMES:
        shown = match.group(1) if match else text
        raise SinkError(f"unknown sink {shown!r} in {uri!r}: use one of {_known()}")
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise SinkError(f"cannot read the options {query!r} in {uri!r}: write them as "
                        f"?name=value&name=value") from None
    return match.group(1).lower(), match.group(2) or "", options


def _host_port(target: str, uri: str, default_port: int) -> tuple[str, int]:
    match = _HOST_PORT.match(target)
    if not match:
        raise SinkError(f"cannot read HOST:PORT {target!r} in {uri!r}: write it like "
                        f"{uri.split(':', 1)[0]}://127.0.0.1:{default_port}")
    host = match.group(1) if match.group(1) is not None else match.group(2)
    port_text = match.group(3)
    if port_text is None or port_text == "":
        port = default_port
    elif not port_text.isdigit():
        raise SinkError(f"port {port_text!r} in {uri!r} is not a number: give a UDP port "
                        f"from 1 to 65535")
    else:
        port = int(port_text)
        if not 0 < port < 65536:
            raise SinkError(f"port {port} in {uri!r} is out of range: give a UDP port from 1 "
                            f"to 65535")
    return host or _DEFAULT_HOST, port


def _take(options: dict[str, str], known: dict[str, Callable[[str], object]], scheme: str,
          uri: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, text in options.items():
        if key not in known:
            names = ", ".join(known) or "none"
            raise SinkError(f"unknown option {key!r} in {uri!r}: {scheme} sinks take {names}")
        try:
            out[key] = known[key](text)
        except ValueError:
            raise SinkError(f"option {key}={text!r} in {uri!r} is not a valid "
                            f"{known[key].__name__}") from None
    return out


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


_flag.__name__ = "flag (0 or 1)"


def _number(text: str) -> float:
    return float(text)


_number.__name__ = "number"


def sink_from_uri(uri: str, *, rate_hz: float | None = None) -> Sink:
    """Builds the sink a URI names, without opening it.

    Args:
        uri: See the module docstring.
        rate_hz: The output rate: the LSL streams' nominal rate and the Live Link frame rate,
            unless the URI sets its own.

    Raises:
        SinkError: An unknown scheme, an unknown option, a bad port (one line each).
    """
    scheme, target, options = split_sink_uri(uri)
    if scheme == "livelink":
        from .livelink import DEFAULT_PORT, LiveLinkSender

        host, port = _host_port(target, uri, DEFAULT_PORT)
        kwargs = _take(options, {"subject": str, "device_id": str, "fps": _number},
                       scheme, uri)
        if rate_hz and "fps" not in kwargs:
            kwargs["fps"] = rate_hz
        return LiveLinkSender(host, port, **kwargs)
    if scheme == "vmc":
        from .vmc import DEFAULT_PORT, VmcSender

        host, port = _host_port(target, uri, DEFAULT_PORT)
        _take(options, {}, scheme, uri)
        return VmcSender(host, port)
    from .lsl import LslSink

    name = target.strip("/")
    if "/" in name or ":" in name:
        raise SinkError(f"cannot read the LSL stream name {target!r} in {uri!r}: write it "
                        f"like lsl://imucap")
    kwargs = _take(options, {"rate_hz": _number, "source_id": str, "action_units": _flag,
                             "presence_threshold": _number}, scheme, uri)
    if rate_hz and "rate_hz" not in kwargs:
        kwargs["rate_hz"] = rate_hz
    return LslSink(name or "imucap", **kwargs)


def open_sink(uri: str, *, rate_hz: float | None = None) -> Sink:
    """Builds the sink a URI names and opens it (use it as a context manager to close it).

    Raises:
        SinkError: As :func:`sink_from_uri`, and whatever the sink's ``open()`` raises: a host
            that does not resolve, a missing package.
    """
    return sink_from_uri(uri, rate_hz=rate_hz).open()
