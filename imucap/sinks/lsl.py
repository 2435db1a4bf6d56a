"""Lab Streaming Layer outlets: the blendshapes and the AU intensities as two LSL streams.

Two streams, both float32 at the output rate, so LabRecorder (or any inlet) records them next
to EEG, EMG, eye tracking or video markers on one clock:

=====================  ===============  ========  ==================  ======================
stream name            type             channels  labels              unit
=====================  ===============  ========  ==================  ======================
``NAME blendshapes``   ``Blendshapes``  52        ARKit names         ``normalized``
``NAME action units``  ``ActionUnits``  18        ``AU01``..``AU45``  ``FACS intensity 0-5``
=====================  ===============  ========  ==================  ======================

Each stream's ``source_id`` is ``imucap@HOST/NAME/blendshapes`` (``.../aus``) unless given,
the same on every run, so a recorder picks the stream up again after a restart.

Time stamps. A frame's ``time_s`` is on the host's ``time.monotonic()`` clock (the device
clock mapping puts every sample there; see :mod:`imucap.clock`). LSL stamps are on
``pylsl.local_clock()`` (``std::chrono::steady_clock``: CLOCK_MONOTONIC on Linux too, but not
guaranteed to be the same clock elsewhere), so each sample is stamped
``local_clock() - (time.monotonic() - frame.time_s)``: the frame's age measured on the clock it
was stamped with, carried onto LSL's. The two clock reads sit next to each other (a
microsecond apart), and LSL maps its clock between machines itself.

A frame without AU intensities (``aus`` None) gets them estimated from its weights with
:func:`imucap.vocab.au_intensities`, exactly as the streaming engine does (``estimate_aus``;
off: NaN is sent, so the two streams stay sample for sample aligned).
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

import numpy as np

import imucap
from imucap.vocab import ARKIT_NAMES, AU_NAMES, au_intensities

from .base import LIVE_EXTRA_HINT, Sink, SinkError

if TYPE_CHECKING:
    from imucap.inference.engine import FaceFrame

__all__ = [
    "AU_STREAM_TYPE",
    "AU_UNIT",
    "BLENDSHAPE_STREAM_TYPE",
    "BLENDSHAPE_UNIT",
    "LslSink",
    "default_source_id",
    "import_pylsl",
]

BLENDSHAPE_STREAM_TYPE = "Blendshapes"
BLENDSHAPE_UNIT = "normalized"
AU_STREAM_TYPE = "ActionUnits"
AU_UNIT = "FACS intensity 0-5"


def import_pylsl():
    """Imports pylsl, or raises a one-line :class:`SinkError` saying how to get it."""
    try:
        import pylsl
    except ImportError:
        raise SinkError(f"the LSL sink needs pylsl: {LIVE_EXTRA_HINT}") from None
    except (RuntimeError, OSError) as exc:
        # pylsl raises at import when it finds no liblsl; its message spans several lines.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SinkError(f"pylsl cannot load liblsl ({first}): {LIVE_EXTRA_HINT} (pylsl's "
                        f"wheels carry liblsl), or install liblsl and set PYLSL_LIB to it"
                        ) from None
    return pylsl


def default_source_id(name: str) -> str:
    """The stable base of the source ids of stream ``name`` on this host."""
    return f"imucap@{socket.gethostname()}/{name}"


class LslSink(Sink):
    """Pushes each frame into an LSL outlet of blendshapes and one of AU intensities.

    Args:
        name: Base name of the streams (``<name> blendshapes``, ``<name> action units``).
        rate_hz: Nominal rate of the streams: the output rate.
        source_id: Base of the source ids (``<source_id>/blendshapes``, ``/aus``); default
            :func:`default_source_id`.
        action_units: Whether to make the AU stream at all.
        estimate_aus: For a frame without AUs, estimate them from its weights (else NaN).

    Raises:
        SinkError: On a bad rate (at once); on a missing pylsl or liblsl (at ``open()``).
    """

    transient_errors = (OSError, RuntimeError)  # pylsl reports liblsl's errors as RuntimeError

    def __init__(self, name: str = "imucap", *, rate_hz: float = 60.0,
                 source_id: str | None = None, action_units: bool = True,
                 estimate_aus: bool = True) -> None:
        if not name or not isinstance(name, str):
            raise SinkError(f"an LSL stream needs a name, got {name!r}")
        if not (isinstance(rate_hz, (int, float)) and 0 < rate_hz < float("inf")):
            raise SinkError(f"LSL rate_hz must be a positive number, got {rate_hz!r}")
        super().__init__(f"lsl://{name}")
        self.stream_name = name
        self.rate_hz = float(rate_hz)
        base = default_source_id(name) if source_id is None else source_id
        self.blendshape_source_id = f"{base}/blendshapes"
        self.au_source_id = f"{base}/aus" if action_units else None
        self.estimate_aus = estimate_aus
        self._pylsl = None
        self._blend_outlet = None
        self._au_outlet = None
        self._nan_aus = np.full((1, len(AU_NAMES)), np.nan, np.float32)

    def _open(self) -> None:
        pylsl = import_pylsl()
        try:
            blend = pylsl.StreamOutlet(self._info(
                pylsl, f"{self.stream_name} blendshapes", BLENDSHAPE_STREAM_TYPE,
                self.blendshape_source_id, ARKIT_NAMES, BLENDSHAPE_UNIT, "Blendshape"))
            aus = None if self.au_source_id is None else pylsl.StreamOutlet(self._info(
                pylsl, f"{self.stream_name} action units", AU_STREAM_TYPE, self.au_source_id,
                AU_NAMES, AU_UNIT, "ActionUnit"))
        except (RuntimeError, OSError) as exc:
            raise SinkError(f"cannot create the LSL outlets for {self.stream_name!r} ({exc}): "
                            f"check the network settings in lsl_api.cfg") from None
        self._pylsl = pylsl
        self._blend_outlet = blend
        self._au_outlet = aus

    def _info(self, pylsl, name: str, kind: str, source_id: str, labels: tuple[str, ...],
              unit: str, channel_type: str):
        info = pylsl.StreamInfo(name, kind, len(labels), self.rate_hz, pylsl.cf_float32,
                                source_id)
        desc = info.desc()
        desc.append_child_value("manufacturer", "imucap")
        desc.append_child_value("version", imucap.__version__)
        channels = desc.append_child("channels")
        for label in labels:
            channel = channels.append_child("channel")
            channel.append_child_value("label", label)
            channel.append_child_value("unit", unit)
            channel.append_child_value("type", channel_type)
        return info

    def lsl_time(self, frame_time_s: float) -> float:
        """A host time (``time.monotonic()``) on LSL's clock; see the module docstring."""
        assert self._pylsl is not None
        return self._pylsl.local_clock() - (time.monotonic() - frame_time_s)

    def _send(self, frame: FaceFrame) -> int:
        stamp = self.lsl_time(frame.time_s)
        weights = np.asarray(frame.weights, dtype=np.float32).reshape(1, -1)
        self._blend_outlet.push_chunk(weights, stamp)
        sent = weights.nbytes
        if self._au_outlet is not None:
            if frame.aus is not None:
                aus = np.asarray(frame.aus, dtype=np.float32).reshape(1, -1)
            elif self.estimate_aus:
                aus = au_intensities(weights)
            else:
                aus = self._nan_aus
            self._au_outlet.push_chunk(aus, stamp)
            sent += aus.nbytes
        return sent

    def _close(self) -> None:
        # Dropping the outlets destroys them (pylsl frees the liblsl outlet in __del__).
        self._blend_outlet = None
        self._au_outlet = None
