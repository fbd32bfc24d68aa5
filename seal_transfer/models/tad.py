"""Temporal action detector over one tube's feature sequence: proposals and classification in one network.

The paper (Table 4) uses "a unified network that combines the temporal proposal network and the action
classification network with a multi-task loss" (Faster-TAD). This is a small plain-torch network of that kind:

  features (B, C, T) ─ conv embedding ─ temporal feature pyramid (stride 1, 2, 4, …)
     ├─ anchor-free proposal head on every pyramid position: actionness + distances to start / end
     └─ 1-D RoIAlign of each proposal (inside bins + context bins either side) on the stride-1 map
          → classification (sigmoid multi-label, or softmax with a background class) + boundary refinement
  loss = focal(actionness) + GIoU(proposal boundaries) + classification + smooth-L1(refinement)
  inference: proposal NMS → RoI head → score = class probability × actionness → per-class Gaussian soft-NMS.

Coordinates: feature i covers the interval [i, i+1) of "steps" (u-coordinates), so a segment in seconds maps to
u = (t - grid_start) / grid_step. Padding is masked everywhere (convs, assignment, proposals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from seal_transfer.models.config import TadConfig


class ChannelNorm(nn.Module):
    """LayerNorm over channels of a (B, C, T) map: per position, so padding never leaks into statistics."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class MaskedConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(cin, cout, 3, stride=stride, padding=1)
        self.norm = ChannelNorm(cout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.stride > 1:
            mask = mask[:, :: self.stride]
        x = F.relu(self.norm(self.conv(x)))
        return x * mask[:, None, :].to(x.dtype), mask


def segment_iou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """tIoU of every segment in a (N, 2) against every segment in b (M, 2) → (N, M)."""
    inter = (torch.minimum(a[:, None, 1], b[None, :, 1]) - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp(min=0)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    return inter / union.clamp(min=1e-8)


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - generalised tIoU of matched (N, 2) segments."""
    inter = (torch.minimum(pred[:, 1], target[:, 1]) - torch.maximum(pred[:, 0], target[:, 0])).clamp(min=0)
    union = (pred[:, 1] - pred[:, 0]) + (target[:, 1] - target[:, 0]) - inter
    hull = torch.maximum(pred[:, 1], target[:, 1]) - torch.minimum(pred[:, 0], target[:, 0])
    iou = inter / union.clamp(min=1e-8)
    return 1.0 - iou + (hull - union) / hull.clamp(min=1e-8)


def soft_nms(segments: torch.Tensor, scores: torch.Tensor, sigma: float, keep: int) -> torch.Tensor:
    """Gaussian soft-NMS run for every class at once.

    segments (K, 2), scores (C, K) → decayed scores (C, K); after `keep` picks per class the rest are 0.
    The picks are sequential (that is what soft-NMS is), but each step works on all classes together.
    """
    scores = scores.clone()
    num_classes, k = scores.shape
    if k == 0:
        return scores
    iou = segment_iou_matrix(segments, segments)  # (K, K)
    out = torch.zeros_like(scores)
    remaining = torch.ones_like(scores, dtype=torch.bool)
    rows = torch.arange(num_classes, device=scores.device)
    for _ in range(min(keep, k)):
        masked = torch.where(remaining, scores, torch.full_like(scores, -1.0))
        best = masked.argmax(dim=1)  # (C,)
        out[rows, best] = scores[rows, best].clamp(min=0)
        remaining[rows, best] = False
        scores = scores * torch.exp(-(iou[best] ** 2) / sigma)
    return out


@dataclass
class Detections:
    """Per-tube detections in u-coordinates."""

    segments: torch.Tensor  # (N, 2)
    labels: torch.Tensor  # (N,) class index
    scores: torch.Tensor  # (N,)


class TemporalDetector(nn.Module):
    """Proposal + classification network over (B, C, T) feature sequences with a (B, T) validity mask."""

    def __init__(self, in_channels: int, num_classes: int, multilabel: bool, cfg: Optional[TadConfig] = None) -> None:
        super().__init__()
        cfg = cfg or TadConfig()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.cfg = cfg
        self.num_classes = num_classes
        self.multilabel = multilabel
        d = cfg.hidden
        self.embed = nn.ModuleList(
            [MaskedConvBlock(in_channels if i == 0 else d, d) for i in range(max(cfg.embed_layers, 1))]
        )
        self.down = nn.ModuleList([MaskedConvBlock(d, d, stride=2) for _ in range(cfg.levels - 1)])
        self.obj_tower = nn.ModuleList([MaskedConvBlock(d, d) for _ in range(cfg.head_layers)])
        self.reg_tower = nn.ModuleList([MaskedConvBlock(d, d) for _ in range(cfg.head_layers)])
        self.obj_out = nn.Conv1d(d, 1, 3, padding=1)
        self.reg_out = nn.Conv1d(d, 2, 3, padding=1)
        self.level_scale = nn.Parameter(torch.ones(cfg.levels))
        nn.init.constant_(self.obj_out.bias, -math.log((1 - 0.01) / 0.01))  # prior 0.01: focal-loss practice
        bins = cfg.roi_bins + 2 * cfg.context_bins
        self.roi_mlp = nn.Sequential(
            nn.Linear(d * bins, d), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout),
            nn.Linear(d, d), nn.ReLU(inplace=True),
        )
        self.cls_out = nn.Linear(d, num_classes if multilabel else num_classes + 1)  # softmax: last = background
        self.refine_out = nn.Linear(d, 2)

    @property
    def length_multiple(self) -> int:
        """Padded sequence lengths must be multiples of this so every level's mask lines up."""
        return 2 ** (self.cfg.levels - 1)

    # ---------------------------------------------------------------------------------------- stage 1
    def pyramid(self, x: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        x = x * mask[:, None, :].to(x.dtype)  # whatever the padding holds, it reads as zeros
        for block in self.embed:
            x, _ = block(x, mask)
        base = x
        levels, masks = [x], [mask]
        for block in self.down:
            x, mask = block(x, mask)
            levels.append(x)
            masks.append(mask)
        return base, levels, masks

    def proposal_head(self, levels: list[torch.Tensor], masks: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Flattened over levels: actionness logits (B, N), distances (B, N, 2) in steps, point centres, strides."""
        logits, dists, centres, strides, valid = [], [], [], [], []
        for level, (feat, mask) in enumerate(zip(levels, masks)):
            stride = 2**level
            obj, reg = feat, feat
            for block in self.obj_tower:
                obj, _ = block(obj, mask)
            for block in self.reg_tower:
                reg, _ = block(reg, mask)
            logits.append(self.obj_out(obj).squeeze(1))
            dist = F.relu(self.reg_out(reg) * self.level_scale[level]).transpose(1, 2) * stride
            dists.append(dist)
            n = feat.shape[-1]
            centres.append(torch.arange(n, device=feat.device, dtype=feat.dtype) * stride + 0.5)
            strides.append(torch.full((n,), float(stride), device=feat.device, dtype=feat.dtype))
            valid.append(mask)
        return {
            "logits": torch.cat(logits, 1), "dists": torch.cat(dists, 1), "centres": torch.cat(centres),
            "strides": torch.cat(strides), "valid": torch.cat(valid, 1),
        }

    # ---------------------------------------------------------------------------------------- stage 2
    def roi_features(self, base: torch.Tensor, rois: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Context-aware 1-D RoIAlign: rois (K, 3) = [batch index, start, end] in steps → (K, hidden * bins)."""
        cfg = self.cfg
        length = (rois[:, 2] - rois[:, 1]).clamp(min=1e-3)
        ctx = length * cfg.context_ratio
        parts = [
            roi_align_1d(base, rois[:, 0].long(), lo, hi, bins, lengths=lengths[rois[:, 0].long()])
            for lo, hi, bins in ((rois[:, 1] - ctx, rois[:, 1], cfg.context_bins),
                                 (rois[:, 1], rois[:, 2], cfg.roi_bins),
                                 (rois[:, 2], rois[:, 2] + ctx, cfg.context_bins))
            if bins > 0
        ]
        return torch.cat(parts, dim=2).flatten(1)

    def roi_head(self, base: torch.Tensor, rois: torch.Tensor, lengths: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(class logits (K, C or C+1), refinement (K, 2) as fractions of the proposal length)."""
        hidden = self.roi_mlp(self.roi_features(base, rois, lengths))
        return self.cls_out(hidden), self.refine_out(hidden)

    # ---------------------------------------------------------------------------------------- proposals
    def decode_proposals(self, head: dict[str, torch.Tensor], lengths: torch.Tensor, keep: int
                         ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per item: (segments (K, 2), actionness (K,)) after top-k and NMS, clipped to [0, length]."""
        from torchvision.ops import nms

        cfg = self.cfg
        scores = torch.sigmoid(head["logits"].detach())
        scores = torch.where(head["valid"], scores, torch.full_like(scores, -1.0))
        starts = head["centres"][None] - head["dists"].detach()[..., 0]
        ends = head["centres"][None] + head["dists"].detach()[..., 1]
        out = []
        for b in range(scores.shape[0]):
            top = torch.topk(scores[b], min(cfg.pre_nms_proposals, scores.shape[1])).indices
            top = top[scores[b, top] >= 0]
            seg = torch.stack([starts[b, top].clamp(min=0), torch.minimum(ends[b, top], lengths[b])], 1)
            ok = seg[:, 1] - seg[:, 0] > 1e-3
            seg, sc = seg[ok], scores[b, top][ok]
            boxes = torch.stack([seg[:, 0], torch.zeros_like(sc), seg[:, 1], torch.ones_like(sc)], 1)
            kept = nms(boxes, sc, cfg.proposal_nms_iou)[:keep]  # IoU of [s,0,e,1] boxes = tIoU
            out.append((seg[kept], sc[kept]))
        return out

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        base, levels, masks = self.pyramid(x, mask)
        return base, self.proposal_head(levels, masks)

    # ---------------------------------------------------------------------------------------- training
    def loss(self, x: torch.Tensor, mask: torch.Tensor, targets: list[dict[str, torch.Tensor]]
             ) -> dict[str, torch.Tensor]:
        """Multi-task loss. targets[b]: 'segments' (G, 2) in steps, 'labels' (G,) class indices."""
        cfg = self.cfg
        base, head = self(x, mask)
        lengths = mask.sum(1).to(x.dtype)
        obj_target, reg_target = self._assign_points(head, targets)
        valid = head["valid"]
        positive = obj_target > 0
        num_pos = max(float(positive.sum()), 1.0)
        focal = _sigmoid_focal(head["logits"][valid], obj_target[valid], cfg.focal_alpha, cfg.focal_gamma)
        focal = focal.sum() / num_pos
        if positive.any():
            centres = head["centres"][None].expand_as(head["logits"])[positive]
            pred = torch.stack([centres - head["dists"][positive][:, 0], centres + head["dists"][positive][:, 1]], 1)
            boundary = giou_loss(pred, reg_target[positive]).mean()
        else:
            boundary = head["dists"].sum() * 0.0
        # Stage 2 on detached proposals + the ground truth itself (so positives exist from the first step).
        proposals = self.decode_proposals(head, lengths, cfg.num_proposals)
        rois, cls_t, ref_t, ref_w = [], [], [], []
        for b, ((seg, _), tgt) in enumerate(zip(proposals, targets)):
            gts, labels = tgt["segments"], tgt["labels"]
            seg = torch.cat([seg, gts], 0) if len(gts) else seg
            if len(seg) == 0:
                continue
            rois.append(torch.cat([torch.full((len(seg), 1), float(b), device=x.device, dtype=x.dtype), seg], 1))
            c, r, w = self._roi_targets(seg, gts, labels)
            cls_t.append(c)
            ref_t.append(r)
            ref_w.append(w)
        if rois:
            logits, refine = self.roi_head(base, torch.cat(rois), lengths)
            cls_target = torch.cat(cls_t)
            if self.multilabel:
                classification = F.binary_cross_entropy_with_logits(logits, cls_target, reduction="sum") / max(
                    len(cls_target), 1)
            else:
                classification = F.cross_entropy(logits, cls_target)
            weights = torch.cat(ref_w)
            refinement = (F.smooth_l1_loss(refine, torch.cat(ref_t), reduction="none", beta=0.1).sum(1) * weights
                          ).sum() / weights.sum().clamp(min=1.0)
        else:
            classification = refinement = head["logits"].sum() * 0.0
        total = (focal + cfg.loss_weight_boundary * boundary + cfg.loss_weight_classification * classification
                 + cfg.loss_weight_refinement * refinement)
        return {"loss": total, "actionness": focal.detach(), "boundary": boundary.detach(),
                "classification": classification.detach(), "refinement": refinement.detach()}

    def _assign_points(self, head: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """FCOS/ActionFormer assignment: a point is positive for the shortest segment whose centre region holds it
        and whose size suits the point's level (max distance in [4·2^(l-1), 4·2^l) steps)."""
        cfg = self.cfg
        centres, strides = head["centres"], head["strides"]
        batch, n = head["logits"].shape
        obj = torch.zeros(batch, n, device=centres.device, dtype=centres.dtype)
        reg = torch.zeros(batch, n, 2, device=centres.device, dtype=centres.dtype)
        lo = torch.where(strides > 1, 2.0 * strides, torch.zeros_like(strides))
        hi = torch.where(strides >= 2 ** (cfg.levels - 1), torch.full_like(strides, float("inf")), 4.0 * strides)
        for b, tgt in enumerate(targets):
            gts = tgt["segments"]
            if len(gts) == 0:
                continue
            s, e = gts[:, 0][None], gts[:, 1][None]  # (1, G)
            c = centres[:, None]  # (N, 1)
            mid = (s + e) / 2
            radius = cfg.center_radius * strides[:, None]
            inside = (c >= torch.maximum(s, mid - radius)) & (c <= torch.minimum(e, mid + radius))
            reach = torch.maximum(c - s, e - c)
            fits = (reach >= lo[:, None]) & (reach < hi[:, None])
            ok = inside & fits
            length = torch.where(ok, (e - s).expand_as(ok), torch.full_like(reach, float("inf")))
            best_len, best = length.min(1)
            pos = torch.isfinite(best_len)
            obj[b, pos] = 1.0
            reg[b, pos] = gts[best[pos]]
        return obj, reg

    def _roi_targets(self, seg: torch.Tensor, gts: torch.Tensor, labels: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k = len(seg)
        if len(gts) == 0:
            cls = (torch.zeros(k, self.num_classes, device=seg.device) if self.multilabel
                   else torch.full((k,), self.num_classes, dtype=torch.long, device=seg.device))
            return cls, torch.zeros(k, 2, device=seg.device), torch.zeros(k, device=seg.device)
        iou = segment_iou_matrix(seg, gts)  # (K, G)
        best_iou, best = iou.max(1)
        hit = iou >= self.cfg.positive_iou
        if self.multilabel:
            cls = torch.zeros(k, self.num_classes, device=seg.device)
            rows, cols = torch.nonzero(hit, as_tuple=True)
            cls[rows, labels[cols]] = 1.0
        else:
            cls = torch.where(best_iou >= self.cfg.positive_iou, labels[best],
                              torch.full_like(best, self.num_classes))
        length = (seg[:, 1] - seg[:, 0]).clamp(min=1e-3)
        ref = (gts[best] - seg) / length[:, None]
        return cls, ref, (best_iou >= self.cfg.positive_iou).to(seg.dtype)

    # ---------------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def detect(self, x: torch.Tensor, mask: torch.Tensor) -> list[Detections]:
        """Detections per item, in steps, best first."""
        cfg = self.cfg
        base, head = self(x, mask)
        lengths = mask.sum(1).to(x.dtype)
        proposals = self.decode_proposals(head, lengths, cfg.num_proposals)
        out: list[Detections] = []
        for b, (seg, actionness) in enumerate(proposals):
            if len(seg) == 0:
                out.append(Detections(seg.new_zeros(0, 2), torch.zeros(0, dtype=torch.long), seg.new_zeros(0)))
                continue
            rois = torch.cat([torch.full((len(seg), 1), float(b), device=x.device, dtype=x.dtype), seg], 1)
            logits, refine = self.roi_head(base, rois, lengths)
            probs = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, 1)[:, : self.num_classes]
            length = (seg[:, 1] - seg[:, 0]).clamp(min=1e-3)
            refined = seg + refine * length[:, None]
            refined = torch.stack([refined[:, 0].clamp(min=0, max=float(lengths[b])),
                                   refined[:, 1].clamp(min=0, max=float(lengths[b]))], 1)
            refined[:, 1] = torch.maximum(refined[:, 1], refined[:, 0] + 1e-3)
            scores = (probs * actionness[:, None]).T  # (C, K)
            scores = soft_nms(refined, scores, cfg.soft_nms_sigma, cfg.max_detections)
            flat = scores.flatten()
            top = torch.topk(flat, min(cfg.max_detections, flat.numel())).indices
            top = top[flat[top] > cfg.score_threshold]
            out.append(Detections(refined[top % len(seg)], top // len(seg), flat[top]))
        return out


def roi_align_1d(fmap: torch.Tensor, batch_index: torch.Tensor, start: torch.Tensor, end: torch.Tensor, bins: int,
                 samples: int = 2, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """RoIAlign along time (torchvision `aligned=True` convention: cell i is centred at i + 0.5).

    fmap (B, D, T); each of the K regions [start, end) is split into `bins` bins, each the mean of `samples`
    linearly interpolated points; points outside [-1, T] read zero, as in RoIAlign. `lengths` (K,) gives each
    region's own sequence length, so padding after a shorter sequence reads as its end. Pure torch (gather), because
    torchvision's CPU roi_align backward is orders of magnitude slower on a 1-pixel-high map. → (K, D, bins)
    """
    if lengths is None:
        lengths = torch.full_like(start, float(fmap.shape[-1]))
    num_t = lengths.to(start.dtype)[:, None]  # (K, 1)
    steps = (torch.arange(bins * samples, device=fmap.device, dtype=fmap.dtype) + 0.5) / (bins * samples)
    points = start[:, None] + steps[None] * (end - start)[:, None] - 0.5  # (K, P) in cell-index space
    outside = (points < -1.0) | (points > num_t)
    points = torch.minimum(points.clamp(min=0.0), num_t - 1)
    left = points.floor().long()
    right = torch.minimum(left + 1, (num_t - 1).long())
    weight = (points - left.to(points.dtype))[..., None]
    seq = fmap.transpose(1, 2)  # (B, T, D)
    rows = batch_index[:, None]
    values = seq[rows, left] * (1 - weight) + seq[rows, right] * weight  # (K, P, D)
    values = values.masked_fill(outside[..., None], 0.0)
    return values.view(len(start), bins, samples, -1).mean(2).transpose(1, 2)


def _sigmoid_focal(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    from torchvision.ops import sigmoid_focal_loss

    return sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction="none")
