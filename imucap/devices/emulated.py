"""``emulator:`` devices: an emulated array on a pseudo-terminal, read by the serial driver.

The bytes really cross the operating system's serial layer, so this exercises the same code as
a board on ``/dev/ttyACM0``. Options (after ``?``): ``sensors`` (a count) or a preset name as the
target (``emulator:imusic11``, ``emulator:face6``), ``emu_rate_hz`` (the emulator's own rate;
``rate_hz`` asks for a rate through SET_RATE like with real hardware), ``seed``,
``clock_drift_ppm``, ``clock_offset_s``, ``chip``, and the faults ``drop``, ``corrupt``,
``garbage``, ``unknown``, ``stall_every_s``, ``stall_s``, ``disconnect_every_s``,
``disconnect_s`` (see :class:`~imucap.firmware_bridge.emulator.FaultConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imucap.errors import BadDeviceURIError
from imucap.firmware_bridge.emulator import (
    EmulatedArray,
    EmulatorConfig,
    FaultConfig,
    FaultReport,
    MotionSource,
    PtyRunner,
)
from imucap.firmware_bridge.sites import site_preset

from .base import register_device
from .serial import SerialConfig, SerialDevice


@dataclass(kw_only=True)
class EmulatorDeviceConfig(SerialConfig):
    """Stream settings plus the emulated array to start.

    Attributes:
        emulator: What the emulated array looks like and which faults it injects.
        motion: What its sensors measure (a :class:`MotionSource`); None for the default
            synthetic face.
    """

    emulator: EmulatorConfig = field(default_factory=EmulatorConfig)
    motion: MotionSource | None = None
    port: str | None = "(emulator)"


class EmulatorDevice(SerialDevice):
    """An emulated array started in this process and read through the serial driver."""

    type_name = "emulator"

    def __init__(self, config: EmulatorDeviceConfig) -> None:
        self.array = EmulatedArray(config.emulator, motion=config.motion)
        self.runner = PtyRunner(self.array)
        config.port = self.runner.port
        super().__init__(config)

    @property
    def name(self) -> str:
        return f"emulator on {self.runner.port}"

    @property
    def injected(self) -> FaultReport:
        """What the emulator has sent and injected so far."""
        return self.array.report

    def connect(self) -> None:
        self.runner.start()
        try:
            super().connect()
        except BaseException:
            self.runner.stop()
            raise

    def disconnect(self) -> None:
        super().disconnect()
        self.runner.stop()


_EMU_KEYS = {"emu_rate_hz": "rate_hz", "seed": "seed", "clock_drift_ppm": "clock_drift_ppm",
             "clock_offset_s": "clock_offset_s", "chip": "chip",
             "samples_per_frame_emu": "samples_per_frame"}


@register_device("emulator")
def _from_uri(target: str, params: dict[str, str]) -> EmulatorDevice:
    from .uri import stream_settings, take_options

    try:
        faults = FaultConfig(**take_options(params, FaultConfig))
    except ValueError as exc:
        raise BadDeviceURIError(f"emulator: {exc}") from None
    try:
        sites = site_preset(target or "imusic11")
        if "sensors" in params:
            sites = site_preset(f"sensors{int(params.pop('sensors'))}")
    except ValueError as exc:
        raise BadDeviceURIError(str(exc)) from None
    emu = {}
    for key, name in _EMU_KEYS.items():
        if key in params:
            value = params.pop(key)
            emu[name] = value if name == "chip" else (float(value) if "." in value or "e" in
                                                       value.lower() else int(value))
    if "seed" in emu:
        faults.seed = int(emu["seed"])
    try:
        emu_config = EmulatorConfig(sites=sites, faults=faults, **emu)
    except ValueError as exc:
        raise BadDeviceURIError(f"emulator: {exc}") from None
    return EmulatorDevice(EmulatorDeviceConfig(emulator=emu_config, **stream_settings(params)))
