#!/usr/bin/env bash
# Best effort: the Debian packages some tests use as real parts. Without root or apt those
# tests skip and say why; the core and its other tests need none of them.
#   blender, python3-numpy      the real client the glTF export test imports our files with
#                               (its glTF importer needs numpy, which blender does not pull in)
#   libusb-1.0-0                Open3D (the [viewer] extra) will not import without it
#   libegl1, libgl1-mesa-dri    Mesa's software OpenGL: headless rendering (imucap render)
#   xvfb                        a virtual screen for the viewer window tests (real Tk windows)
#   libespeak-ng1,              speech synthesis with phoneme timings for the speech-to-face
#   espeak-ng-data              data (imucap.audio.espeak loads the library; no CLI needed)
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  exit 0
fi
updated=0
install_group() {
  local what="$1"; shift
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    if [ $updated = 0 ]; then apt-get update >/dev/null 2>&1; updated=1; fi
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || \
      echo "imucap: could not install ${missing[*]}; the $what tests will skip"
  fi
}
install_group "viewer" libusb-1.0-0 libegl1 libgl1-mesa-dri
install_group "viewer window" xvfb
install_group "speech synthesis" libespeak-ng1 espeak-ng-data
command -v blender >/dev/null 2>&1 || install_group "Blender glTF" blender python3-numpy
exit 0
