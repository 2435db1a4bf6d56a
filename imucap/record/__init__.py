"""Recording sessions: the append-only session file, the recorder, calibration, dataset build
and replay. See :mod:`.session_file` for the file layout and why it is MCAP."""
