"""Lab Streaming Layer outlets: the blendshapes and the AU intensities as two LSL streams.

Two streams, both float32 at the output rate, so LabRecorder (or any inlet) records them next
to EEG, EMG, eye tracking or video markers on one clock:

=====================  ===============  ========  ======================  ======================
stream name            type             channels  labels                  unit
=====================  ===============  ========  ======================  ======================
``NAME blendshapes``   ``Blendshapes``  52        ARKit names             ``normalized``
``NAME action units``  ``ActionUnits``  36        ``AU01_r``..``AU45_r``  ``FACS intensity 0-5``
                                                  ``AU01_c``..``AU45_c``  ``presence 0/1``
=====================  ===============  ========  ======================  ======================

The AU channels are named as OpenFace names its CSV columns (``_r`` intensity, ``_c``
presence), so analysis scripts written for OpenFace output find them by name. Unlike OpenFace's
CSV the stream has an ``AU28_r`` (imucap's heuristic AU28 intensity), so intensity and
presence both have 18 channels in :data:`imucap.vocab.AU_NAMES` order. Presence is the
intensity at or above ``presence_threshold`` (FACS grade A by default), frame by frame: for
AU45 that means "eyes closed now"; the blink events that offline outputs use for AU45 need
the frames after the blink, which a live stream has not seen yet.

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
off: NaN is sent for intensity and presence, so the two streams stay sample for sample
aligned).
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

import numpy as np

import imucap
from imucap.vocab import ARKIT_NAMES, AU_NAMES, au_intensities, au_presence
from imucap.vocab.aus import PRESENCE_THRESHOLD

from .base import LIVE_EXTRA_HINT, Sink, SinkError

if TYPE_CHECKING:
    from imucap.inference.engine import FaceFrame

__all__ = [
    "AU_CHANNELS",
    "AU_PRESENCE_UNIT",
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
AU_PRESENCE_UNIT = "presence 0/1"
#: Channel labels of the AU stream: OpenFace's column names, intensities then presence.
AU_CHANNELS: tuple[str, ...] = (tuple(f"{code}_r" for code in AU_NAMES)
                                + tuple(f"{code}_c" for code in AU_NAMES))


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
        presence_threshold: Intensity at which an AU counts as present (``_c`` channels).

    Raises:
        SinkError: On a bad rate (at once); on a missing pylsl or liblsl (at ``open()``).
    """

    transient_errors = (OSError, RuntimeError)  # pylsl reports liblsl's errors as RuntimeError

    def __init__(self, name: str = "imucap", *, rate_hz: float = 60.0,
                 source_id: str | None = None, action_units: bool = True,
                 estimate_aus: bool = True,
                 presence_threshold: float = PRESENCE_THRESHOLD) -> None:
        if not name or not isinstance(name, str):
            raise SinkError(f"an LSL stream needs a name, got {name!r}")
        if not (isinstance(rate_hz, (int, float)) and 0 < rate_hz < float("inf")):
            raise SinkError(f"LSL rate_hz must be a positive number, got {rate_hz!r}")
        if not (isinstance(presence_threshold, (int, float)) and 0 < presence_threshold <= 5):
            raise SinkError(f"LSL presence_threshold must be in (0, 5], got "
                            f"{presence_threshold!r}")
        super().__init__(f"lsl://{name}")
        self.stream_name = name
        self.rate_hz = float(rate_hz)
        base = default_source_id(name) if source_id is None else source_id
        self.blendshape_source_id = f"{base}/blendshapes"
        self.au_source_id = f"{base}/aus" if action_units else None
        self.estimate_aus = estimate_aus
        self.presence_threshold = float(presence_threshold)
        self._pylsl = None
        self._blend_outlet = None
        self._au_outlet = None
        self._nan_aus = np.full((1, len(AU_CHANNELS)), np.nan, np.float32)

    def _open(self) -> None:
        pylsl = import_pylsl()
        try:
            blend = pylsl.StreamOutlet(self._info(
                pylsl, f"{self.stream_name} blendshapes", BLENDSHAPE_STREAM_TYPE,
                self.blendshape_source_id, ARKIT_NAMES, BLENDSHAPE_UNIT, "Blendshape"))
            aus = None if self.au_source_id is None else pylsl.StreamOutlet(self._info(
                pylsl, f"{self.stream_name} action units", AU_STREAM_TYPE, self.au_source_id,
                AU_CHANNELS, [AU_UNIT] * len(AU_NAMES) + [AU_PRESENCE_UNIT] * len(AU_NAMES),
                "ActionUnit"))
        except (RuntimeError, OSError) as exc:
            raise SinkError(f"cannot create the LSL outlets for {self.stream_name!r} ({exc}): "
                            f"check the network settings in lsl_api.cfg") from None
        self._pylsl = pylsl
        self._blend_outlet = blend
        self._au_outlet = aus

    def _info(self, pylsl, name: str, kind: str, source_id: str, labels: tuple[str, ...],
              unit: str | list[str], channel_type: str):
        info = pylsl.StreamInfo(name, kind, len(labels), self.rate_hz, pylsl.cf_float32,
                                source_id)
        desc = info.desc()
        desc.append_child_value("manufacturer", "imucap")
        desc.append_child_value("version", imucap.__version__)
        channels = desc.append_child("channels")
        units = [unit] * len(labels) if isinstance(unit, str) else unit
        for label, unit_of in zip(labels, units, strict=True):
            channel = channels.append_child("channel")
            channel.append_child_value("label", label)
            channel.append_child_value("unit", unit_of)
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
                intensity = np.asarray(frame.aus, dtype=np.float32).reshape(1, -1)
            elif self.estimate_aus:
                intensity = au_intensities(weights)
            else:
                intensity = None
            if intensity is None:
                aus = self._nan_aus
            else:
                present = au_presence(intensity, threshold=self.presence_threshold)
                present = np.where(np.isnan(intensity), np.nan, present)
                aus = np.concatenate([intensity, present], axis=1).astype(np.float32)
            self._au_outlet.push_chunk(aus, stamp)
            sent += aus.nbytes
        return sent

    def _close(self) -> None:
        # Dropping the outlets destroys them (pylsl frees the liblsl outlet in __del__).
        self._blend_outlet = None
        self._au_outlet = None
