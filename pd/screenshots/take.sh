#!/bin/bash
# Regenerate pd/screenshots/*.png: the Pd GUI under Xvfb (Debian: puredata-gui xvfb x11-utils imagemagick).
# usage: pd/screenshots/take.sh            (from the repository root; every patch)
#        pd/screenshots/take.sh keyboard.pd gansynth-help.pd   (only these patches)
set -e
script=$(readlink -f "$0")
cd "$(dirname "$0")/.."
shot() {  # shot patch.pd out.png: open the patch, find its window, capture it
  local patch="$1" out="$2" name id
  name=$(basename "$patch")
  pd -nosound -nomidi -noprefs -open "$patch" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 40); do
    sleep 0.5
    id=$(xwininfo -root -tree 2>/dev/null | grep "\"$name" | head -1 | awk '{print $1}')
    [ -n "$id" ] && break
  done
  sleep 2
  import -window "$id" "$out.tmp.png"
  convert "$out.tmp.png" -colors 64 -strip "PNG8:$out"
  rm -f "$out.tmp.png"
  kill "$pid"
}
if [ -z "$DISPLAY" ]; then
  exec xvfb-run -a -s "-screen 0 1400x1100x24" "$script" "$@"
fi
if [ $# -eq 0 ]; then set -- *.pd; fi
for f in "$@"; do f=$(basename "$f"); shot "$PWD/$f" "screenshots/${f%.pd}.png"; done
