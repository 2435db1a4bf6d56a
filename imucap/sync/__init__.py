"""Clock synchronisation: every stream of a session on one session clock, the truth aligned.

- :mod:`.clocks`: whole-session fits of a device's or a truth source's clock;
- :mod:`.align`: the tap and cross-correlation alignment of truth against the IMUs;
- :mod:`.session_sync`: both applied to a recorded session (:func:`synchronise`).
"""
