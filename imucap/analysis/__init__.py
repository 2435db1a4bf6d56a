"""Analyses of Action Unit streams, as affective-computing researchers run them on OpenFace output.

Every analysis reads its input through :mod:`imucap.analysis.au_input`, which turns whatever a
user has (a dataset session, a recording, a blendshape take, or an OpenFace-style AU CSV) into
:class:`~imucap.analysis.au_input.AuSeries`: the 18 OpenFace Action Units per frame, frames
without a face flagged, and the AU columns the source lacks named. The analyses built on it:

- :mod:`imucap.analysis.au_summary` (``imucap au``): occurrence rates, intensity histograms,
  co-occurrence and blink rate of a session;
- :mod:`imucap.analysis.expressions` (``imucap expression``): the basic expression of each
  moment, with its confidence and the AU evidence behind it.

Modules are imported by their full path (``from imucap.analysis.au_summary import
summarise``); this package imports none of them, and nothing here pulls in torch, matplotlib or
Open3D, so importing one analysis never loads another's dependencies.
"""
