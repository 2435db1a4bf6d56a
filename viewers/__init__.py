"""Pixels: rig rendering, live and playback views (Open3D, an optional extra).

This room arrives with the viewers issue; it already installs as ``imucap.viewers``.
"""
