"""Selection rules beyond the paper (pseudo/rules.py), the EMA teacher (engine/ema.py) and score-weighted loss,
on hand-made score tensors whose right answers are known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from seal_transfer.engine.detection import detection_loss
from seal_transfer.engine.ema import EmaWeights
from seal_transfer.errors import UserError
from seal_transfer.pseudo.config import AdaptConfig
from seal_transfer.pseudo.rules import (
    AdaptiveRule,
    ClassBalancedRule,
    DebiasedRule,
    PaperRule,
    build_rule,
    debias_scores,
    flexmatch_thresholds,
    predicted_marginal,
)
from seal_transfer.pseudo.selection import select


def majority_biased(n_major: int = 20, n_minor: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0 wins most boxes with high scores; classes 1 and 2 win a few with low ones; both views agree."""
    rows = []
    for i in range(n_major):
        rows.append([0.95 - 0.01 * i, 0.05, 0.02])  # class 0: 0.95, 0.94, ... descending
    for i in range(n_minor):
        rows.append([0.05, 0.28 - 0.01 * i, 0.02])  # class 1: below lambda_c = 0.3
    for i in range(n_minor):
        rows.append([0.05, 0.02, 0.25 - 0.01 * i])  # class 2: below lambda_c
    v1 = torch.tensor(rows)
    return v1, v1.clone()


def test_paper_rule_is_select() -> None:
    v1, v2 = majority_biased()
    v2[3] = torch.tensor([0.1, 0.9, 0.0])  # one disagreeing box
    sel, state = PaperRule(0.3)(v1, v2, 1)
    ref = select(v1, v2, 0.3)
    assert torch.equal(sel.keep, ref.keep) and torch.equal(sel.labels, ref.labels) and state == {}
    assert sel.labels[:, 0].sum() == 19 and not sel.labels[:, 1:].any()  # the paper rule keeps class 0 only


def test_class_balanced_keeps_each_predicted_classs_top_fraction() -> None:
    v1, v2 = majority_biased(n_major=20, n_minor=5)
    rule = ClassBalancedRule(start=0.2, step=0.2, max_fraction=0.5)
    sel, state = rule(v1, v2, round_index=1)
    kept = torch.nonzero(sel.keep).reshape(-1).tolist()
    # p = 20 %: 4 of class 0's 20 boxes (its 4 best: rows 0-3), 1 of each minor class's 5 (its best).
    assert kept == [0, 1, 2, 3, 20, 25]
    assert sel.labels[kept].int().argmax(1).tolist() == [0, 0, 0, 0, 1, 2]
    assert state == {"class_fraction": 0.2}
    # The share grows per round and stops at max_fraction: 0.4 in round 2, 0.5 from round 3 on.
    assert rule.fraction(2) == pytest.approx(0.4) and rule.fraction(3) == 0.5 and rule.fraction(9) == 0.5
    sel3, _ = rule(v1, v2, round_index=3)
    assert sel3.labels.sum(0).tolist() == [10, 2, 2]  # floor(0.5 * 20), floor(0.5 * 5)
    # Every class the model predicts keeps a share; the majority cannot take the whole selection.
    assert (sel3.labels.sum(0) > 0).all()


def test_class_balanced_quota_is_a_share_of_the_agreeing_boxes() -> None:
    v1, v2 = majority_biased(n_major=10, n_minor=5)
    v2[:5] = torch.tensor([0.0, 0.9, 0.0])  # the 5 best class-0 boxes disagree in view 2
    sel, _ = ClassBalancedRule(start=0.2, step=0.0, max_fraction=0.2)(v1, v2, 1)
    assert torch.nonzero(sel.keep[:10]).reshape(-1).tolist() == [5]  # 20 % of the 5 agreeing: the best of them
    assert not (sel.keep & ~sel.agree).any()
    loose, _ = ClassBalancedRule(start=0.2, step=0.0, max_fraction=0.2, require_agreement=False)(v1, v2, 1)
    # 20 % of all 10, ranked by the two views' mean score for view 1's class (view 2 gives the 5 others ~0)
    assert torch.nonzero(loose.keep[:10]).reshape(-1).tolist() == [5, 6]


def test_flexmatch_thresholds_closed_form() -> None:
    # 6 boxes: class 0 confidently wins 3, class 1 wins 1, class 2 wins 1 unconfidently, 1 box class 0 unconfident.
    v = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.1, 0.0], [0.7, 0.1, 0.0], [0.1, 0.6, 0.0], [0.1, 0.0, 0.2],
                      [0.25, 0.1, 0.0]])
    lam = 0.5
    sigma = torch.tensor([3.0, 1.0, 0.0])
    # warm-up: denominator max(max sigma = 3, unused = 6 - 4 = 2) = 3
    beta = sigma / 3
    expected = lam * beta / (2 - beta)
    assert torch.allclose(flexmatch_thresholds(v, lam, warmup=True), expected)
    # many unconfident boxes: the warm-up denominator (unused count) takes over and lowers every bar
    many = torch.cat([v, torch.full((10, 3), 0.1)])
    beta_w = sigma / 12  # unused = 16 - 4
    assert torch.allclose(flexmatch_thresholds(many, lam, warmup=True), lam * beta_w / (2 - beta_w))
    assert torch.allclose(flexmatch_thresholds(many, lam, warmup=False), expected)


def test_adaptive_rule_keeps_rarely_confident_classes_below_lambda() -> None:
    v1, v2 = majority_biased()
    sel, state = AdaptiveRule(0.3)(v1, v2, 1)
    # Class 0 (the best-learned) keeps the bar lambda_c = 0.3; classes 1 and 2 (never confident) get bar 0.
    assert sel.labels.sum(0).tolist() == [20, 5, 5]
    assert state["classes_below_lambda_c"] == 2 and state["threshold_min"] == 0.0
    assert not PaperRule(0.3)(v1, v2, 1)[0].labels[:, 1:].any()  # where the paper rule keeps none of them


def test_debiasing_a_known_prior_shift_changes_the_argmax() -> None:
    # Two classes; the pool predicts class 0 four times as often as class 1.
    marginal = torch.tensor([0.8, 0.2], dtype=torch.float64)
    s = torch.tensor([[0.6, 0.5]])  # class 0 ahead by a logit margin of log(1.5) - 0 = 0.405
    tau = 1.0
    adjusted = debias_scores(s, marginal, tau)
    logit = torch.log(s.double() / (1 - s.double())) - tau * torch.log(marginal)
    assert torch.allclose(adjusted.double(), torch.sigmoid(logit), atol=1e-6)
    assert adjusted.argmax(1).item() == 1  # tau * log(0.8 / 0.2) = 1.386 > 0.405: the argmax moves to class 1
    assert debias_scores(s, marginal, 0.2).argmax(1).item() == 0  # 0.2 * 1.386 = 0.277 < 0.405: it stays
    assert torch.allclose(debias_scores(s, torch.tensor([0.5, 0.5]), 1.0).argmax(1), s.argmax(1))  # flat prior


def test_debiased_rule_marginal_and_running_estimate() -> None:
    v1 = torch.tensor([[0.6, 0.2], [0.6, 0.2], [0.6, 0.2], [0.6, 0.5]])
    v2 = v1.clone()
    first = predicted_marginal(v1, v2)
    assert torch.allclose(first, torch.tensor([(0.75 * 3 + 0.6 / 1.1) / 4, (0.25 * 3 + 0.5 / 1.1) / 4],
                                              dtype=torch.float64))
    rule = DebiasedRule(lambda_c=0.3, tau=1.0, momentum=0.5)
    sel, state = rule(v1, v2, 1)
    assert state["marginal"] == pytest.approx(first.tolist())
    assert sel.predicted[3].item() == 1  # the near-tie box moves to the rare class
    assert sel.predicted[:3].tolist() == [0, 0, 0]
    previous = {"marginal": [0.5, 0.5]}
    _, state2 = rule(v1, v2, 2, previous)
    assert state2["marginal"] == pytest.approx((0.5 * torch.tensor([0.5, 0.5]) + 0.5 * first).tolist())


@pytest.mark.parametrize("rule", [PaperRule(0.3), ClassBalancedRule(), AdaptiveRule(0.3),
                                  DebiasedRule(0.3, tau=0.5)], ids=lambda r: type(r).__name__)
def test_agreement_composes_with_every_rule(rule) -> None:
    v1, v2 = majority_biased()
    # Three boxes (one per class) whose view 2 ranks another class just above view 1's, which it still scores high.
    v2[0] = torch.tensor([0.9, 0.0, 0.95])
    v2[20] = torch.tensor([0.05, 0.28, 0.3])
    v2[25] = torch.tensor([0.3, 0.02, 0.25])
    sel, _ = rule(v1, v2, 1)
    disagree = ~sel.agree  # in the rule's own score space (debiased: after the adjustment)
    assert disagree.sum() >= 2
    assert not (sel.keep & disagree).any()  # with the filter, nothing that disagrees is kept
    loose_rule = type(rule)(**{**rule.__dict__, "require_agreement": False})
    loose, _ = loose_rule(v1, v2, 1)
    assert (loose.keep & disagree).any()  # without it, some of them are
    if not isinstance(rule, ClassBalancedRule):  # a threshold rule loses nothing by dropping the filter
        assert (loose.keep | ~sel.keep).all()  # (a quota is a share of more candidates, so it may)


def test_build_rule_and_config_validation() -> None:
    assert isinstance(build_rule(AdaptConfig()), PaperRule)
    rule = build_rule(AdaptConfig(selection="class_balanced", class_fraction_start=0.1, class_fraction_step=0.05,
                                  class_fraction_max=0.3))
    assert rule == ClassBalancedRule(0.1, 0.05, 0.3, 0.0, True)
    assert build_rule(AdaptConfig(selection="debiased", debias_tau=2.0)) == DebiasedRule(0.3, 2.0, 0.5, True)
    assert build_rule(AdaptConfig(selection="adaptive", require_agreement=False)) == AdaptiveRule(0.3, True, False)
    for kwargs, message in [
        ({"selection": "flexmatch"}, "adapt.selection': 'flexmatch' is not one of paper, class_balanced"),
        ({"teacher": "mean"}, "adapt.teacher'"),
        ({"loss_weight": "soft"}, "adapt.loss_weight'"),
        ({"class_fraction_start": 0.0}, "adapt.class_fraction_start': must be in (0, 1]"),
        ({"class_fraction_start": 0.5, "class_fraction_max": 0.4}, "adapt.class_fraction_max': must be >="),
        ({"ema_momentum": 1.0}, "adapt.ema_momentum': must be in [0, 1)"),
        ({"debias_tau": -1.0}, "adapt.debias_tau'"),
        ({"selection": "debiased", "multi_label": True}, "apply to selection=paper only"),
    ]:
        with pytest.raises(UserError, match=None) as info:
            AdaptConfig(**kwargs).validate()
        assert message in str(info.value), (kwargs, str(info.value))


def test_ema_weights_equal_the_closed_form_after_k_updates() -> None:
    m = 0.9
    start = {"w": torch.tensor([1.0, -2.0]), "count": torch.tensor(3)}
    ema = EmaWeights(m, start=start)
    steps = [torch.tensor([float(i), 2.0 * i]) for i in range(1, 6)]
    for i, w in enumerate(steps):
        ema.update({"w": w, "count": torch.tensor(10 + i)})
    k = len(steps)
    expected = m**k * start["w"] + sum((1 - m) * m ** (k - 1 - i) * w for i, w in enumerate(steps))
    assert ema.average is not None and torch.allclose(ema.average["w"], expected, atol=1e-6)
    assert ema.average["count"].item() == 14  # integer buffers are copied, not averaged
    assert ema.updates == k and start["w"].tolist() == [1.0, -2.0]  # the start state is not modified
    restored = EmaWeights(0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.momentum == m and restored.updates == k and torch.equal(restored.average["w"], ema.average["w"])
    with pytest.raises(ValueError):
        EmaWeights(1.0)


def test_score_weighted_loss() -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(4, 3), (torch.rand(4, 3) > 0.5).float()
    plain = detection_loss(logits, targets, None, "bce")
    assert torch.allclose(detection_loss(logits, targets, None, "bce", torch.full((4,), 0.3)), plain)  # uniform
    w = torch.tensor([1.0, 0.0, 1.0, 0.0])  # boxes 1 and 3 do not count
    kept = detection_loss(logits[[0, 2]], targets[[0, 2]], None, "bce")
    assert torch.allclose(detection_loss(logits, targets, None, "bce", w), kept)
    pose = torch.tensor([0, 1])
    pose_targets = torch.tensor([[1.0, 0, 1], [0, 1.0, 0], [1.0, 0, 0], [0, 1.0, 1]])
    plain_pose = detection_loss(logits, pose_targets, pose, "bce_softmax_pose")
    assert torch.allclose(detection_loss(logits, pose_targets, pose, "bce_softmax_pose", torch.ones(4)), plain_pose)
    assert math.isfinite(float(detection_loss(logits, pose_targets, pose, "bce_softmax_pose", w)))
    assert torch.allclose(detection_loss(logits, pose_targets, pose, "bce_softmax_pose", w),
                          detection_loss(logits[[0, 2]], pose_targets[[0, 2]], pose, "bce_softmax_pose"))
