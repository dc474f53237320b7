#!/usr/bin/env bash
# dev/build.sh [NAME] [cmake options...]: an incremental developer build.
#
# Builds libffnc, the extension, ffnc-bench and the C tests into build/NAME (default: dev) and
# stages an importable package in build/NAME/stage/ffnc: the Python sources linked from ffnc/,
# the freshly built extension beside them. Several builds (say, plain and sanitized) coexist.
#   dev/build.sh                      then  PYTHONPATH=build/dev/stage python -m pytest
#   dev/build.sh asan -DFFNC_SANITIZE=ON   (see README for running the tests under ASan)
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-dev}
shift || true
build=build/$name
python=$(command -v python3 || command -v python)
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DFFNC_BUILD_PYTHON=ON -DPython_EXECUTABLE="$python" "$@" >/dev/null
fi
if ! log=$(ninja -C "$build" 2>&1); then
  printf '%s\n' "$log" >&2
  exit 1
fi
stage=$build/stage/ffnc
rm -rf "$stage"
mkdir -p "$stage"
for f in ffnc/*; do
  case "$f" in *.so|*/__pycache__) continue ;; esac
  ln -s "$PWD/$f" "$stage/"
done
cp "$build"/_core*.so "$stage/"
echo "staged $stage (PYTHONPATH=$build/stage)"
