"""The paper's keep/drop rule on hand-made score tensors."""

from __future__ import annotations

import pytest
import torch

from seal_transfer.errors import UserError
from seal_transfer.pseudo.config import AdaptConfig
from seal_transfer.pseudo.selection import select


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_keeps_confident_agreeing_samples() -> None:
    v1 = t([[0.9, 0.1, 0.0], [0.2, 0.25, 0.1], [0.6, 0.7, 0.0]])
    v2 = t([[0.8, 0.2, 0.1], [0.1, 0.29, 0.0], [0.9, 0.2, 0.0]])
    sel = select(v1, v2, lambda_c=0.3)
    assert sel.keep.tolist() == [True, False, False]  # 2nd: not confident; 3rd: views disagree (1 vs 0)
    assert sel.agree.tolist() == [True, True, False]
    assert sel.labels.tolist() == [[True, False, False], [False, False, False], [False, False, False]]
    assert sel.predicted.tolist() == [0, 1, 1]
    assert sel.score[0].item() == pytest.approx(0.85)


def test_threshold_is_strict() -> None:
    v = t([[0.3, 0.1]])
    assert not select(v, v, lambda_c=0.3).keep.item()
    assert select(v + 1e-4, v + 1e-4, lambda_c=0.3).keep.item()


def test_score_views_options() -> None:
    v1 = t([[0.5, 0.1]])
    v2 = t([[0.2, 0.1]])
    assert not select(v1, v2, 0.3, "both").keep.item()
    assert select(v1, v2, 0.3, "first").keep.item()
    assert select(v1, v2, 0.3, "either").keep.item()
    assert select(v1, v2, 0.3, "mean").keep.item()  # (0.5 + 0.2) / 2 = 0.35 > 0.3
    assert not select(v1, v2, 0.4, "mean").keep.item()


def test_multi_label_keeps_every_class_above_threshold_in_both_views() -> None:
    v1 = t([[0.9, 0.6, 0.1], [0.2, 0.1, 0.25]])
    v2 = t([[0.4, 0.8, 0.5], [0.9, 0.1, 0.1]])
    sel = select(v1, v2, 0.3, multi_label=True)
    assert sel.labels.tolist() == [[True, True, False], [False, False, False]]
    assert sel.keep.tolist() == [True, False]


def test_lambda_one_keeps_nothing_and_shape_errors() -> None:
    v = t([[1.0, 0.0]])
    assert not select(v, v, 1.0).keep.any()
    with pytest.raises(ValueError):
        select(t([[0.1, 0.2]]), t([[0.1, 0.2, 0.3]]), 0.3)


@pytest.mark.parametrize(
    "field, value, key",
    [
        ("lambda_c", 0.0, "adapt.lambda_c"),
        ("lambda_c", 1.5, "adapt.lambda_c"),
        ("rounds", 0, "adapt.rounds"),
        ("score_views", "all", "adapt.score_views"),
        ("pool", "x", "adapt.pool"),
    ],
)
def test_config_validation_names_key(field: str, value: object, key: str) -> None:
    cfg = AdaptConfig(**{field: value})
    with pytest.raises(UserError, match=key):
        cfg.validate()
