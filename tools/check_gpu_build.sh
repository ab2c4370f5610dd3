#!/usr/bin/env bash
# The GPU build as a user without a CUDA toolkit makes it: PYDARKNET_GPU=1 pip install .
# in a fresh virtual environment, with nvcc off PATH and CUDA_HOME unset, so that nvcc,
# the CUDA headers and libraries all come from NVIDIA's wheels (pip caches them). Then
# the tests that concern it: the extension links its CUDA libraries and carries device
# code, a GPU network without a GPU is a DeviceError, CPU inference is still upstream's
# (the GPU tests proper run where a GPU is visible). .ci/run runs this after the suite.
#   PYDARKNET_CUDA_ARCH   architectures to build (default here: 80;90)
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
venv="$work/venv"
python3 -m venv "$venv"
PATH="$(printf '%s\n' "${PATH//:/$'\n'}" | while read -r dir; do [ -x "$dir/nvcc" ] || printf '%s:' "$dir"; done)"
export PATH="$venv/bin:${PATH%:}"
unset CUDA_HOME
if command -v nvcc >/dev/null; then echo "nvcc is still on PATH: $(command -v nvcc)" >&2; exit 1; fi

export PYDARKNET_CUDA_ARCH="${PYDARKNET_CUDA_ARCH:-80;90}"
# Only what the tests below import; NVIDIA's wheels (~1.2 GB) are not kept in pip's cache
# (the variable reaches the isolated build environment too).
PIP_NO_CACHE_DIR=1 PYDARKNET_GPU=1 python -m pip install ".[pil]" pytest
python - <<'PY'
import os, pydarknet
features = pydarknet.build_info()["features"]
wanted = {int(a) for a in os.environ["PYDARKNET_CUDA_ARCH"].split(";")}
assert features["gpu"] and wanted <= set(features["cuda_arch"]), features
print("GPU build:", features["cuda"], "architectures", features["cuda_arch"],
      "CUDA devices here:", pydarknet.cuda_device_count())
PY
pytest tests/test_gpu.py tests/test_inference.py tests/test_build_info.py
