#!/usr/bin/env bash
# dev/pytest-asan.sh [pytest args...]: the pytest suite against an AddressSanitizer +
# UndefinedBehaviorSanitizer build of the extension ffnc._core and of libffnc (GCC).
#
#   dev/pytest-asan.sh                            the whole suite
#   dev/pytest-asan.sh tests/test_io.py -x -q     any pytest arguments
#
# Builds build/pytest-asan (dev/build.sh with -DFFNC_SANITIZE=ON; FFNC_ASAN_BUILD=NAME uses
# build/NAME instead), then runs pytest on the package staged there. CPython is not
# instrumented, and ASan must be the first library of a process, ahead of the extension that
# needs it: the sanitizer runtimes are preloaded (LD_PRELOAD), and every process the tests
# start (subprocess, mpiexec ranks) inherits that and the options below. Each sanitizer report
# goes to a file of its own; any report from any process fails the run (exit 1, the reports
# printed), whatever pytest said. Nothing is suppressed.
#
# Sanitizer options, and why:
#   detect_leaks=0               CPython never frees much of what it allocates (interned strings,
#                                static types, module state): LeakSanitizer would report at
#                                every exit leaks that are not ffnc's. ffnc's own leaks are
#                                checked by the C tests, which CI runs under ASan with leak
#                                detection on.
#   allocator_may_return_null=1  tests ask for absurd sizes on purpose; an allocation that cannot
#                                be served must return NULL, as glibc's malloc does, so that ffnc
#                                reports FFNC_ERR_OUT_OF_MEMORY (MemoryError). ASan's default is
#                                to stop the process.
#   halt_on_error=1 (ASan and UBSan; the build also has -fno-sanitize-recover=all): the first
#                                error ends the process that made it.
#   log_path                     one file per process and sanitizer, so reports from processes
#                                whose output a test captures are seen too. Files holding only
#                                warnings (ASan warns of each allocation it refuses) are shown
#                                but do not fail the run. In a process that runs ASan, GCC's
#                                UBSan ignores its log_path: a sitecustomize module (on
#                                PYTHONPATH, chaining to any other) sets UBSan's report path in
#                                every Python process instead.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${FFNC_ASAN_BUILD:-pytest-asan}
build=build/$name
python=$(command -v python3 || command -v python)

# What dev/build.sh needs beyond `pip install ".[test]"` (which builds in an isolated env).
missing=()
"$python" -c "import Cython" 2>/dev/null || missing+=("cython>=3.0.10")
command -v cmake >/dev/null || missing+=(cmake)
command -v ninja >/dev/null || missing+=(ninja)
if [ ${#missing[@]} -gt 0 ]; then
  echo "pytest-asan: installing ${missing[*]} with pip"
  "$python" -m pip install --quiet "${missing[@]}"
fi

dev/build.sh "$name" -DFFNC_SANITIZE=ON -DFFNC_BUILD_TESTS=OFF -DFFNC_BUILD_BENCH=OFF
if ! grep -q '^FFNC_SANITIZE:BOOL=ON$' "$build/CMakeCache.txt"; then
  echo "pytest-asan: $build was configured without -DFFNC_SANITIZE=ON; remove it" >&2
  exit 2
fi
if ! grep -q libasan "$build"/stage/ffnc/_core*.so; then
  echo "pytest-asan: the staged extension is not linked against ASan" >&2
  exit 2
fi
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
libasan=$("$cc" -print-file-name=libasan.so)
libubsan=$("$cc" -print-file-name=libubsan.so)
if [ ! -f "$libasan" ] || [ ! -f "$libubsan" ]; then
  echo "pytest-asan: $cc has no libasan.so / libubsan.so to preload (GCC's are needed)" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ffnc-pytest-asan.XXXXXX")
reports=$work/reports
mkdir "$reports" "$work/site"
cat >"$work/site/sitecustomize.py" <<'EOF'
"""dev/pytest-asan.sh: sends UBSan's reports to files, as ASan's go (UBSan ignores its
log_path in a process that runs ASan), then runs the sitecustomize this one hides, if any."""
import ctypes
import importlib.machinery
import importlib.util
import os
import sys

ctypes.CDLL(os.environ["FFNC_UBSAN_LIBRARY"]).__sanitizer_set_report_path(
    os.environ["FFNC_UBSAN_LOG"].encode())
_here = os.path.dirname(os.path.abspath(__file__))
_rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
_spec = importlib.machinery.PathFinder.find_spec("sitecustomize", _rest)
if _spec is not None and _spec.loader is not None:
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
EOF
if ! pytest=$(command -v pytest); then
  echo "pytest-asan: no pytest here (pip install \".[test]\")" >&2
  exit 2
fi
status=0
LD_PRELOAD="$libasan:$libubsan${LD_PRELOAD:+:$LD_PRELOAD}" \
ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:log_path=$reports/asan" \
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan" \
FFNC_UBSAN_LIBRARY="$libubsan" FFNC_UBSAN_LOG="$reports/ubsan" \
PYTHONPATH="$PWD/$build/stage:$work/site${PYTHONPATH:+:$PYTHONPATH}" \
  "$pytest" "$@" || status=$?

# A report is an error ("ERROR: AddressSanitizer: ...", UBSan's "runtime error: ..."); the
# other files hold warnings, such as each allocation refused under allocator_may_return_null.
errors=$( (grep -l -E 'ERROR: [A-Za-z]*Sanitizer|runtime error:' "$reports"/* 2>/dev/null || true) |
  wc -l)
warnings=$(find "$reports" -type f | wc -l)
warnings=$((warnings - errors))
for f in "$reports"/*; do
  [ -f "$f" ] || continue
  echo "==== $f" >&2
  cat "$f" >&2
done
echo "pytest-asan: $errors sanitizer error report(s), $warnings file(s) of warnings only"
if [ "$errors" -gt 0 ] && [ "$status" -eq 0 ]; then
  status=1
fi
rm -rf "$work"
exit "$status"
