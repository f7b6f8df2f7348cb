#!/usr/bin/env bash
# Installs moto (the AWS emulator) from PyPI into a venv keyed by version:
#   $LOCKSTEP_CACHE/tools/moto/<v>/bin/moto_server
# Idempotent: the `.complete` marker is written last, so an interrupted
# install is redone. Needs python3 (with venv) and PyPI only.
set -euo pipefail

MOTO_VERSION=5.2.1
LOCKSTEP_CACHE=${LOCKSTEP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lockstep}
OUT=$LOCKSTEP_CACHE/tools/moto/$MOTO_VERSION

if [[ -f $OUT/.complete && -x $OUT/bin/moto_server ]]; then
  echo "==> [tools] moto $MOTO_VERSION: cached in $OUT"; exit 0
fi
echo "==> [tools] moto $MOTO_VERSION: installing from PyPI"
rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
python3 -m venv "$OUT"
"$OUT/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
"$OUT/bin/moto_server" --help >/dev/null
touch "$OUT/.complete"
echo "==> [tools] moto $MOTO_VERSION: installed in $OUT"
