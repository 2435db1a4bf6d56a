"""Pixels: faces blended and lit on the CPU, rendered with Open3D, shown or written to video.

- :mod:`.look`: blending (one matrix product), normals, baked lighting, the camera.
- :mod:`.glyphs`: sensor boxes, axes and acceleration / rotation-rate vectors.
- :mod:`.scene`: faces side by side as arrays any renderer draws.
- :mod:`.offscreen`: headless rendering (Open3D's legacy visualizer, EGL/Mesa).
- :mod:`.overlay`: AU bars, titles, timeline (Pillow).
- :mod:`.playback`, :mod:`.render`: sessions and takes on a frame grid, whole frames.
- :mod:`.video`: MP4 (ffmpeg) and PNG writers.
- :mod:`.live`: live sources (a device through the model, Live Link packets).
- :mod:`.window`: the interactive Tk window.

Open3D, Pillow and imageio-ffmpeg come with the ``[viewer]`` extra; nothing here is imported
by the core.
"""
