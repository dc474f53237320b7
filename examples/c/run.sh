#!/usr/bin/env bash
# examples/c/run.sh [FFNC_BUILD_DIR [FFNC_ASAN_BUILD_DIR]]: the C package end to end, as a C
# user meets it.
#   1. `cmake --install` ffnc into a fresh prefix (from FFNC_BUILD_DIR, an existing CMake build
#      of ffnc, else from a new build);
#   2. builds examples/c against that prefix through find_package(ffnc);
#   3. runs xor (also under valgrind when it is installed) and digits, which must reach their
#      targets (exact XOR outputs, >= 0.96 test accuracy);
#   4. with FFNC_ASAN_BUILD_DIR (a build with -DFFNC_SANITIZE=ON): installs that one too and
#      runs xor and digits built with -fsanitize=address,undefined against it;
#   5. runs tests/test_c_api.py: checkpoints from Python predicted in C and the other way round.
# Needs cmake, ninja, a C compiler with OpenMP, and a Python with ffnc, safetensors and pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$root/build/c-examples
python=${PYTHON:-python3}
rm -rf "$work"
mkdir -p "$work"

if [ $# -ge 1 ]; then
  build=$1
else
  build=$work/ffnc
  cmake -S "$root" -B "$build" -G Ninja -DFFNC_BUILD_PYTHON=OFF -DFFNC_BUILD_TESTS=OFF \
    -DFFNC_BUILD_BENCH=OFF >/dev/null
  cmake --build "$build"
fi
cmake --install "$build" --prefix "$work/prefix" >/dev/null
echo "installed: $(cd "$work/prefix" && find . -type f -o -type l | sort | tr '\n' ' ')"

cmake -S "$root/examples/c" -B "$work/examples" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  >/dev/null
cmake --build "$work/examples" >/dev/null

echo "== xor"
"$work/examples/xor"
if command -v valgrind >/dev/null; then
  echo "== xor under valgrind"
  # libgomp keeps its thread pool alive at exit ("possibly lost"); definite leaks and every
  # memory error fail the run
  valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    "$work/examples/xor" >/dev/null
  echo "valgrind: no errors"
fi

echo "== digits"
"$python" "$root/examples/c/make_digits.py" "$work/digits.safetensors"
"$work/examples/digits" "$work/digits.safetensors" "$work/digits_model.safetensors"

if [ $# -ge 2 ]; then
  echo "== xor and digits under AddressSanitizer + UndefinedBehaviorSanitizer"
  cmake --install "$2" --prefix "$work/prefix-asan" >/dev/null
  sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
  cmake -S "$root/examples/c" -B "$work/examples-asan" -G Ninja \
    -DCMAKE_PREFIX_PATH="$work/prefix-asan" -DCMAKE_C_FLAGS="$sanitize" \
    -DCMAKE_EXE_LINKER_FLAGS="$sanitize" >/dev/null
  cmake --build "$work/examples-asan" >/dev/null
  export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
  "$work/examples-asan/xor" >/dev/null
  "$work/examples-asan/digits" "$work/digits.safetensors" >/dev/null
  echo "sanitizers: no errors"
fi

echo "== Python <-> C checkpoints (tests/test_c_api.py, tests/test_io_c.py)"
# from $work, so that `python -m pytest` imports the installed ffnc, not the source tree
(cd "$work" && FFNC_C_PREDICT="$work/examples/predict" \
  FFNC_C_DIGITS_MODEL="$work/digits_model.safetensors" \
  FFNC_C_DIGITS_DATA="$work/digits.safetensors" \
  FFNC_LIBRARY="$(find "$work/prefix" -name 'libffnc.so' | head -n 1)" \
  "$python" -m pytest -q -p no:cacheprovider --rootdir "$root" "$root/tests/test_c_api.py" \
  "$root/tests/test_io_c.py")
