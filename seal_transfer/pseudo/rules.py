"""Selection rules beyond the paper's, as one object each (`adapt.selection`), every knob a config key.

The paper's rule (`paper`, `selection.select`) keeps a box iff its max class score > λ_c and its argmax agrees
under two random views. A model biased toward a frequent class gives that class under both views, so the rule
alone cannot stop confirmation bias. The other rules come from the self-training literature:

- `class_balanced` (CBST, Zou et al. ECCV'18; CReST, Wei et al. CVPR'21): per predicted class, keep its top p %
  most confident boxes, p growing over rounds — every class the model predicts gets a quota, so a frequent class
  cannot take the whole selection.
- `adaptive` (FlexMatch, Zhang et al. NeurIPS'21): per-class thresholds λ_c · M(β_c), with β_c a class's
  "learning status" (how many boxes it confidently wins, relative to the best-learned class) and M(x) = x / (2 - x)
  FlexMatch's convex mapping: classes the model rarely predicts confidently get a lower bar. Chosen over
  Consistent-Teacher's per-class GMM because labelling here is offline over a whole pool with 172 classes and a
  few hundred boxes: many classes have too few boxes to fit a two-component mixture, while a count is always
  defined.
- `debiased` (DebiasPL, Wang et al. CVPR'22): subtract τ · log p̂ from each class's logit before threshold and
  argmax, p̂ the running predicted class marginal (here: the pool's mean normalised scores, an exponential moving
  average over rounds) — a class predicted everywhere is pushed down, a rare one up.

Two-view agreement is a filter that composes with every rule (`adapt.require_agreement`): it restricts the
candidates before a rule picks (for the quota rule this matters: the quota is a share of the agreeing boxes).
Scores are sigmoid outputs in [0, 1] (multi-label BCE), so the debiased rule works on their logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

from seal_transfer.pseudo.config import AdaptConfig
from seal_transfer.pseudo.selection import Selection, select

_EPS = 1e-6


def _argmax_selection(
    view1: torch.Tensor, view2: torch.Tensor, keep: torch.Tensor, agree: torch.Tensor, confident: torch.Tensor
) -> Selection:
    """A single-label Selection: view 1's argmax class for the kept rows, the two views' mean score for it."""
    pred = view1.argmax(dim=1)
    score = (view1.gather(1, pred[:, None]) + view2.gather(1, pred[:, None]))[:, 0] / 2
    labels = torch.zeros_like(view1, dtype=torch.bool)
    labels[torch.arange(len(pred)), pred] = True
    labels &= keep[:, None]
    return Selection(keep=keep, labels=labels, predicted=pred, score=score, agree=agree, confident=confident)


def _agreement(view1: torch.Tensor, view2: torch.Tensor, required: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(agree, candidates): argmax agreement of the views, and the rows a rule may keep under the filter."""
    agree = view1.argmax(dim=1) == view2.argmax(dim=1)
    return agree, agree if required else torch.ones_like(agree)


@dataclass(frozen=True)
class PaperRule:
    """§5.1: max score > λ_c (in the views `score_views` names) and, with `require_agreement`, the same argmax."""

    lambda_c: float
    score_views: str = "both"
    multi_label: bool = False
    require_agreement: bool = True

    def __call__(self, view1: torch.Tensor, view2: torch.Tensor, round_index: int,
                 state: Optional[dict[str, Any]] = None) -> tuple[Selection, dict[str, Any]]:
        sel = select(view1, view2, self.lambda_c, self.score_views, self.multi_label)
        if not self.require_agreement and not self.multi_label:
            sel = _argmax_selection(view1, view2, sel.confident, sel.agree, sel.confident)
        return sel, {}


@dataclass(frozen=True)
class ClassBalancedRule:
    """Per predicted class, the top `fraction(r)` of its candidate boxes by score, where
    fraction(r) = min(start + (r - 1) · step, max): CBST's quota, growing as the model improves.

    At least one box per predicted class is kept (a class with 3 candidates and p = 20 % keeps its best one);
    ties at a class's cut keep the lower box index. Boxes must also score above `min_score` (0: no floor).
    """

    start: float = 0.2
    step: float = 0.1
    max_fraction: float = 0.5
    min_score: float = 0.0
    require_agreement: bool = True

    def fraction(self, round_index: int) -> float:
        return min(self.start + (round_index - 1) * self.step, self.max_fraction)

    def __call__(self, view1: torch.Tensor, view2: torch.Tensor, round_index: int,
                 state: Optional[dict[str, Any]] = None) -> tuple[Selection, dict[str, Any]]:
        agree, candidates = _agreement(view1, view2, self.require_agreement)
        pred = view1.argmax(dim=1)
        score = (view1.gather(1, pred[:, None]) + view2.gather(1, pred[:, None]))[:, 0] / 2
        candidates = candidates & (score > self.min_score)
        p = self.fraction(round_index)
        keep = torch.zeros_like(candidates)
        for c in torch.unique(pred[candidates]).tolist():
            rows = torch.nonzero(candidates & (pred == c)).reshape(-1)
            quota = max(1, math.floor(p * len(rows) + 1e-9))
            order = torch.sort(score[rows], descending=True, stable=True).indices
            keep[rows[order[:quota]]] = True
        sel = _argmax_selection(view1, view2, keep, agree, candidates)
        return sel, {"class_fraction": p}


def flexmatch_thresholds(scores: torch.Tensor, lambda_c: float, warmup: bool = True) -> torch.Tensor:
    """FlexMatch's per-class thresholds λ_c · M(β_c) over a pool of (N, C) scores (view 1).

    σ_c = boxes whose view-1 argmax is c with score > λ_c; β_c = σ_c / max(max_c σ_c, N − Σ σ) with `warmup`
    (FlexMatch's threshold warm-up: while most boxes are unconfident, every class's bar stays low), else
    σ_c / max_c σ_c; M(x) = x / (2 − x). A class nobody confidently predicts gets threshold 0 (its argmax boxes
    are all candidates), the best-learned class λ_c.
    """
    n, num_classes = scores.shape
    max1, pred = scores.max(dim=1)
    sigma = torch.bincount(pred[max1 > lambda_c], minlength=num_classes).to(torch.float64)
    unused = float(n - sigma.sum())
    denominator = max(float(sigma.max()) if num_classes else 0.0, unused if warmup else 0.0)
    beta = sigma / denominator if denominator > 0 else torch.zeros_like(sigma)
    return (lambda_c * beta / (2 - beta)).to(scores.dtype)


@dataclass(frozen=True)
class AdaptiveRule:
    """FlexMatch: keep a box iff its view-1 argmax class c has score > τ_c in both views, τ_c from
    `flexmatch_thresholds` (the pool's own learning status, recomputed every round)."""

    lambda_c: float
    warmup: bool = True
    require_agreement: bool = True

    def __call__(self, view1: torch.Tensor, view2: torch.Tensor, round_index: int,
                 state: Optional[dict[str, Any]] = None) -> tuple[Selection, dict[str, Any]]:
        agree, candidates = _agreement(view1, view2, self.require_agreement)
        tau = flexmatch_thresholds(view1, self.lambda_c, self.warmup)
        pred = view1.argmax(dim=1)
        bar = tau[pred]
        confident = (view1.gather(1, pred[:, None])[:, 0] > bar) & (view2.gather(1, pred[:, None])[:, 0] > bar)
        sel = _argmax_selection(view1, view2, candidates & confident, agree, confident)
        lowered = int((tau < self.lambda_c).sum())
        return sel, {"threshold_min": float(tau.min()) if tau.numel() else None,
                     "threshold_mean": float(tau.mean()) if tau.numel() else None, "classes_below_lambda_c": lowered}


def predicted_marginal(view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
    """The pool's predicted class distribution: each box's scores normalised to sum 1, averaged over boxes and
    views (sigmoid scores are not a distribution; their normalisation is the closest one)."""
    both = torch.cat([view1, view2]).to(torch.float64).clamp_min(0)
    rows = both / both.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return rows.mean(dim=0)


def debias_scores(scores: torch.Tensor, marginal: torch.Tensor, tau: float) -> torch.Tensor:
    """sigmoid(logit(s) − τ · log p̂): DebiasPL's adjustment applied to sigmoid scores."""
    s = scores.to(torch.float64).clamp(_EPS, 1 - _EPS)
    logits = torch.log(s) - torch.log1p(-s)
    adjusted = logits - tau * torch.log(marginal.clamp_min(1e-12))[None, :]
    return torch.sigmoid(adjusted).to(scores.dtype)


@dataclass(frozen=True)
class DebiasedRule:
    """DebiasPL: the paper's rule (λ_c, two-view agreement) on debiased scores. p̂ is this pool's
    `predicted_marginal` in round 1, then p̂_r = m · p̂_(r−1) + (1 − m) · marginal_r (m = `momentum`)."""

    lambda_c: float
    tau: float = 0.5
    momentum: float = 0.5
    require_agreement: bool = True

    def marginal(self, view1: torch.Tensor, view2: torch.Tensor, state: Optional[dict[str, Any]]) -> torch.Tensor:
        now = predicted_marginal(view1, view2)
        previous = (state or {}).get("marginal")
        if previous is None or len(previous) != len(now):
            return now
        return self.momentum * torch.as_tensor(previous, dtype=torch.float64) + (1 - self.momentum) * now

    def __call__(self, view1: torch.Tensor, view2: torch.Tensor, round_index: int,
                 state: Optional[dict[str, Any]] = None) -> tuple[Selection, dict[str, Any]]:
        marginal = self.marginal(view1, view2, state)
        d1, d2 = debias_scores(view1, marginal, self.tau), debias_scores(view2, marginal, self.tau)
        sel = select(d1, d2, self.lambda_c, "both", False)
        if not self.require_agreement:
            sel = _argmax_selection(d1, d2, sel.confident, sel.agree, sel.confident)
        return sel, {"marginal": [round(float(x), 8) for x in marginal]}


Rule = PaperRule | ClassBalancedRule | AdaptiveRule | DebiasedRule


def build_rule(acfg: AdaptConfig) -> Rule:
    """The `adapt.selection` rule with its `adapt.*` knobs (validated at config load)."""
    if acfg.selection == "paper":
        return PaperRule(acfg.lambda_c, acfg.score_views, acfg.multi_label, acfg.require_agreement)
    if acfg.selection == "class_balanced":
        return ClassBalancedRule(acfg.class_fraction_start, acfg.class_fraction_step, acfg.class_fraction_max,
                                 acfg.class_min_score, acfg.require_agreement)
    if acfg.selection == "adaptive":
        return AdaptiveRule(acfg.lambda_c, acfg.adaptive_warmup, acfg.require_agreement)
    if acfg.selection == "debiased":
        return DebiasedRule(acfg.lambda_c, acfg.debias_tau, acfg.debias_momentum, acfg.require_agreement)
    raise ValueError(f"unknown adapt.selection {acfg.selection!r}")  # validate() names the key first
