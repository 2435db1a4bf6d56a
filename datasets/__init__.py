"""Data on disk and data made up: dataset formats and loaders, face-rig motion, the IMU simulator.

This room arrives with the simulator issue; it already installs as ``imucap.datasets``.
"""
