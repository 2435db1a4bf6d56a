#!/usr/bin/env bash
# Best effort: Debian's Blender, the real client the glTF export test imports our files with.
# Without root or apt the test skips and says why; nothing else needs Blender.
command -v blender >/dev/null 2>&1 && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  pkgs="blender python3-numpy"  # the glTF importer needs numpy, which blender does not pull in
  apt-get install -y --no-install-recommends $pkgs >/dev/null 2>&1 || \
    { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends $pkgs >/dev/null 2>&1; } || \
    echo "imucap: could not install blender; the Blender glTF test will skip"
fi
exit 0
