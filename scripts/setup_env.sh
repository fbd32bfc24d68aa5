#!/usr/bin/env bash
# Set up a Python environment for seal_transfer: a virtualenv (default .venv, or $SEAL_VENV) with a working
# torch/torchvision pair and the package installed editable with its dev extra.
#
# torch: if the environment already has a torch + torchvision that work together (e.g. a cluster's CUDA
# build), they are kept. Otherwise pip resolves the newest matching pair from the registry. We never pin
# torch==2.13.0: the CPU build of 2.13 on our machines cannot load PyPI's torchvision ("operator
# torchvision::nms does not exist"); the registry's CUDA build of the newest pair also runs on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SEAL_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip setuptools wheel

torch_works() {
    python - <<'PY' 2>/dev/null
import torch, torchvision
from torchvision.ops import nms
nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
PY
}
if torch_works; then
    echo "[setup] keeping installed torch $(python -c 'import torch; print(torch.__version__)')"
else
    echo "[setup] installing a matching torch + torchvision pair (first time: a few GB, ~2 min)"
    python -m pip install -q "torch>=2.4" "torchvision>=0.19"
    torch_works || { echo "[setup] error: torch/torchvision still do not load together" >&2; exit 1; }
fi
echo "[setup] installing seal_transfer (editable) with dev tools"
python -m pip install -q -e ".[dev]"
python -c "import seal_transfer, torch, torchvision, pytorchvideo, lightning, av; print('[setup] ok: torch', torch.__version__, '| torchvision', torchvision.__version__, '| lightning', lightning.__version__, '| av', av.__version__)"
