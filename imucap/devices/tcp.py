"""An imucap array reached over a TCP stream (a networked board, or ``imucap emulate --tcp``)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import DeviceConfig, register_device
from .links import TcpLink
from .protocol_device import ProtocolDevice


@dataclass(kw_only=True)
class TcpConfig(DeviceConfig):
    """Address of the device.

    Attributes:
        host: Host name or address.
        port: TCP port.
    """

    host: str = "127.0.0.1"
    port: int = 7000


class TcpDevice(ProtocolDevice):
    """An imucap array over TCP; reconnects to the same address after the link drops."""

    type_name = "tcp"

    def __init__(self, config: TcpConfig) -> None:
        super().__init__(config, lambda: TcpLink(config.host, config.port))


@register_device("tcp")
def _from_uri(target: str, params: dict[str, str]) -> TcpDevice:
    from .uri import parse_host_port, stream_settings

    host, port = parse_host_port(target, scheme="tcp")
    return TcpDevice(TcpConfig(host=host, port=port, **stream_settings(params)))
