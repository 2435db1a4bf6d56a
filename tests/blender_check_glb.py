"""Run by Blender: import a glTF/GLB with Blender's own importer and report what it made.

Usage (headless)::

    blender -b --factory-startup --python-exit-code 1 --python tests/blender_check_glb.py -- \\
        FILE.glb OUT.json [SECONDS ...]

Writes ``OUT.json``: Blender's version, the scene's frame rate, every mesh object with shape
keys (their names, the Basis first) and, for each requested time in seconds from the start of
the animation, the shape key values Blender evaluates there (the scene set to that frame and
subframe, so this is what Blender would render). ``tests/test_export_gltf.py`` runs it when a
``blender`` binary is on PATH and compares the values with the track that was written.

Only Blender's Python runs this file; it imports nothing from imucap. A Blender built against
the system Python (Debian's ``apt-get install blender python3-numpy``) takes the first
``python3.x`` on PATH as its Python, so run it with a PATH free of virtualenvs and pyenv (the
test does); its glTF importer needs the system's numpy.
"""

from __future__ import annotations

import json
import math
import sys

import bpy  # noqa: I001  (Blender's module; this script runs inside Blender only)


def main(argv: list[str]) -> None:
    args = argv[argv.index("--") + 1:] if "--" in argv else []
    if len(args) < 2:
        raise SystemExit("usage: blender -b --python blender_check_glb.py -- FILE OUT.json "
                         "[SECONDS ...]")
    path, out, seconds = args[0], args[1], [float(s) for s in args[2:]]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    try:
        # Debian's Blender 3.4.1 fails on the default "NORMALS" shading path (it uses np.bool,
        # which NumPy 1.24 removed); shading does not touch shape keys or their animation.
        result = bpy.ops.import_scene.gltf(filepath=path, import_shading="SMOOTH")
    except TypeError:  # a Blender whose importer has no such option
        result = bpy.ops.import_scene.gltf(filepath=path)
    if "FINISHED" not in result:
        raise SystemExit(f"Blender's glTF importer did not finish: {result}")
    scene = bpy.context.scene
    fps = scene.render.fps / scene.render.fps_base
    report: dict = {"blender": bpy.app.version_string, "fps": fps, "objects": []}
    for obj in scene.objects:
        keys = getattr(obj.data, "shape_keys", None)
        if obj.type != "MESH" or keys is None:
            continue
        action = keys.animation_data.action if keys.animation_data else None
        entry = {
            "name": obj.name,
            "vertices": len(obj.data.vertices),
            "shape_keys": [kb.name for kb in keys.key_blocks],
            "reference_key": keys.reference_key.name,
            "action": action.name if action else None,
            "fcurves": len(action.fcurves) if action else 0,
            "frame_range": list(action.frame_range) if action else None,
            "samples": [],
        }
        for t in seconds:
            frame = t * fps
            whole = math.floor(frame)
            scene.frame_set(whole, subframe=frame - whole)
            entry["samples"].append({
                "seconds": t, "frame": frame,
                "values": {kb.name: kb.value for kb in keys.key_blocks[1:]},
            })
        report["objects"].append(entry)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main(sys.argv)
