"""Errors a user can cause, each carrying one line that says what is wrong and what to do.

The CLI prints ``imucap: error: <message>`` for any :class:`ImucapError` and exits with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ImucapError(Exception):
    """Base class for errors caused by input, hardware or configuration, not by a bug."""


class DeviceError(ImucapError):
    """A device could not be opened, answered wrongly, or went away for good."""


class DeviceNotFoundError(DeviceError):
    """The port, address or device named by the user does not exist."""


class DeviceBusyError(DeviceError):
    """Another program holds the device."""


class DevicePermissionError(DeviceError):
    """The operating system denied access to the device."""


class HandshakeError(DeviceError):
    """Something answered on the port, but not an imucap device (or nothing answered)."""


class DeviceDisconnectedError(DeviceError):
    """The device disconnected and did not come back within the allowed time."""


class StaleDataError(ImucapError):
    """The newest frame is older than the caller accepts."""


class BadDeviceURIError(ImucapError):
    """A device URI could not be understood."""
