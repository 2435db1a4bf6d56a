"""Analyses of face tracks for researchers: basic-expression readout from Action Units.

Modules are imported by their full path (``imucap.analysis.expressions``); nothing here pulls
in torch, matplotlib or Open3D.
"""
