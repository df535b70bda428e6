#!/usr/bin/env bash
# Installs LibTorch 2.9.0 (the version tch 0.22 / burn-tch 0.22 expect) from PyPI into a cache
# folder, without the 4 GB CUDA stack, for the `tch` backend on CPU. Idempotent.
#
# Usage:  eval "$(scripts/install-libtorch.sh)"   # exports LIBTORCH, LIBTORCH_CXX11_ABI, LD_LIBRARY_PATH
#
# For CUDA, install the full wheel set instead (`pip install torch==2.9.0` in a venv) and build
# with LIBTORCH_USE_PYTORCH=1 (see README).
set -euo pipefail
cache=${ADVCLUST_CACHE:-$HOME/.cache/advclust}
venv=$cache/torch-venv
lt=$cache/libtorch
if [ ! -f "$lt/.complete" ]; then
  mkdir -p "$cache"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    torch==2.9.0 nvidia-cuda-runtime-cu12==12.8.90 nvidia-cuda-cupti-cu12==12.8.90 >&2
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  rm -rf "$lt"
  mkdir -p "$lt/lib"
  ln -s "$site/torch/include" "$lt/include"
  for f in libtorch.so libtorch_cpu.so libc10.so libgomp.so.1 libshm.so; do
    src=$(find "$site/torch/lib" -maxdepth 1 -name "$f" | head -n1)
    [ -n "$src" ] || { echo "missing $f in torch wheel" >&2; exit 1; }
    ln -s "$src" "$lt/lib/$f"
  done
  # torch's CPU libraries still link the CUDA runtime and CUPTI by soname
  for f in $(find "$site/nvidia/cuda_runtime/lib" "$site/nvidia/cuda_cupti/lib" -name 'lib*.so*'); do
    ln -sf "$f" "$lt/lib/$(basename "$f")"
  done
  # libgomp may carry a hash in its name inside the wheel
  if [ ! -e "$lt/lib/libgomp.so.1" ]; then
    g=$(find "$site/torch/lib" -name 'libgomp*.so*' | head -n1)
    ln -s "$g" "$lt/lib/libgomp.so.1"
  fi
  touch "$lt/.complete"
fi
echo "export LIBTORCH='$lt'"
echo "export LIBTORCH_CXX11_ABI=1"
echo "export LD_LIBRARY_PATH='$lt/lib'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
