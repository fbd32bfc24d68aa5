"""`python -m seal_transfer.adapt`: semi-supervised adaptation to the target domain (paper §5.1).

Starting from RUN/pretrain (or `init=`), each round pseudo-labels target person boxes under two random views,
keeps a box iff its max class score > λ_c (`adapt.lambda_c`) and both views agree on the class, then trains on
the kept boxes. Writes RUN/adapt/round_<r>/{pseudo_labels.csv, stats.json, checkpoints/, model.pt, metrics.json}.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from seal_transfer.cli import guarded_main, stage_main
from seal_transfer.data.domains import check_real_roots
from seal_transfer.errors import UserError
from seal_transfer.stage import resolve_init, run_stage

SECTIONS = (
    "run_dir",
    "init",
    "seed",
    "force",
    "allow_pickle_checkpoints",
    "adapt",
    "data",
    "model",
    "optim",
    "trainer",
)
DESCRIPTION = (
    "Semi-supervised adaptation: alternate two-view pseudo-labelling of target boxes (kept iff max "
    "score > adapt.lambda_c and both views agree) with training on the kept samples."
)


def adapt(cfg: Any) -> int:
    from seal_transfer.pseudo.rounds import require_hidden_truth, run_adaptation

    check_real_roots(cfg, "source", "target")  # the source label map is the model's output space
    require_hidden_truth(cfg)  # before the stage folder is locked or written

    def work(out_dir: Path) -> dict[str, Any]:
        init, origin = resolve_init(cfg, "adapt")
        if init is None:
            raise UserError(
                f"adapt needs a model trained on the source label space: run seal_transfer.pretrain with "
                f"run_dir={cfg.run_dir} first, or pass init=PATH ({origin})"
            )
        print(f"[adapt] starting from {origin}")
        return run_adaptation(cfg, out_dir, init, origin)

    return run_stage(cfg, "adapt", work)


main = stage_main("seal_transfer.adapt", DESCRIPTION, SECTIONS, adapt)


def cli() -> None:
    sys.exit(guarded_main(main))


if __name__ == "__main__":
    cli()
