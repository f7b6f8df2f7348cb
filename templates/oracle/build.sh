#!/usr/bin/env bash
# Builds the ESO template oracle (ESO's own template package) once per version
# into $LOCKSTEP_CACHE/tools/eso-oracle/<version>/ and prints its path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(awk '$1=="github.com/external-secrets/external-secrets"{print $2}' "$here/go.mod" | head -1)"
cache="${LOCKSTEP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lockstep}"
out="$cache/tools/eso-oracle/$version/eso-oracle"
if [ ! -x "$out" ] || [ "$here/main.go" -nt "$out" ]; then
  mkdir -p "$(dirname "$out")"
  echo "==> building eso-oracle ($version)" >&2
  (cd "$here" && go build -trimpath -o "$out.tmp" . && mv "$out.tmp" "$out")
fi
echo "$out"
