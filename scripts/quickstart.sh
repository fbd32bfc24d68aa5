#!/usr/bin/env bash
# Set up the environment, then run the whole pipeline on the built-in SYNTHETIC world (`small` preset):
#   synth → pretrain (SEAL Clips) → adapt (2 pseudo-label rounds, λ_c = 0.3) → finetune (AVA format, frame-mAP)
# Extra key=value arguments are passed to every stage, e.g. `bash scripts/quickstart.sh trainer.max_epochs=1`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# shellcheck disable=SC1091
. "${SEAL_VENV:-.venv}/bin/activate"
RUN="${RUN_DIR:-runs/quickstart}"
python -m seal_transfer.synth preset=small
for stage in pretrain adapt finetune; do
    echo
    echo "=== python -m seal_transfer.$stage --config configs/testbed.yaml run_dir=$RUN $*"
    python -m seal_transfer.$stage --config configs/testbed.yaml run_dir="$RUN" "$@"
done
echo
echo "Done. Outputs: $RUN/{pretrain,adapt,finetune}/ (metrics.json, model.pt, logs/, val_detections.csv)."
echo "These are SYNTHETIC-world numbers: a check that everything runs, not a SEAL/AVA result."
