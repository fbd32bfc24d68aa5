"""Rasterise the synthetic world with numpy masks: backgrounds, textured actors, objects, camera shake, noise.

No per-pixel Python: each actor is drawn per frame inside its own bounding crop, all its parts evaluated in one
broadcast expression. Pixel (x, y) covers [x, x+1) x [y, y+1) and is painted when its centre is inside a part,
so a part's analytic bounds (the person boxes) contain every pixel painted for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seal_transfer.data.synthetic.motion import BODY_PARTS, PARTS, Kinematics

_HEAD, _OBJECT = PARTS.index("head"), PARTS.index("object")
OBJECT_ID = -2  # id-map value of object pixels (not part of any person box)


@dataclass
class Appearance:
    colors: np.ndarray  # (P, 3) float RGB in [0, 1], one per part
    texture: str  # "stripes" | "checker"
    freq: float  # radians per pixel along the part
    phase: float


def random_appearance(rng: np.random.Generator, style: str) -> Appearance:
    """Source: saturated clothes with stripes. Target: darker, muted clothes with checks (another look)."""
    def hsv(h: float, s: float, v: float) -> np.ndarray:
        k = np.mod(np.array([5.0, 3.0, 1.0]) + h * 6, 6)
        return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)

    if style == "source":
        shirt = hsv(rng.random(), rng.uniform(0.6, 0.95), rng.uniform(0.75, 1.0))
        pants = hsv(rng.random(), rng.uniform(0.5, 0.9), rng.uniform(0.35, 0.7))
        texture = "stripes"
    else:
        shirt = hsv(rng.random(), rng.uniform(0.15, 0.5), rng.uniform(0.35, 0.7))
        pants = hsv(rng.random(), rng.uniform(0.1, 0.4), rng.uniform(0.2, 0.45))
        texture = "checker"
    skin = hsv(rng.uniform(0.02, 0.1), rng.uniform(0.3, 0.6), rng.uniform(0.45, 0.95))
    obj = hsv(rng.random(), 0.9, 0.95)
    colors = np.stack([shirt * 0.8, pants * 0.85, pants, shirt, skin, shirt, obj])
    return Appearance(colors, texture, rng.uniform(0.6, 1.3), rng.uniform(0, 2 * np.pi))


class Background:
    """A frame source behind the actors; `frame(t, dx, dy)` with the camera offset of frame t."""

    def frame(self, t: int, dx: float, dy: float) -> np.ndarray:
        raise NotImplementedError


class PlainBackground(Background):
    """Source domain: a flat wall with a soft gradient and a floor band; static (only actors move)."""

    def __init__(self, rng: np.random.Generator, width: int, height: int) -> None:
        top = rng.uniform(0.75, 0.95, 3)
        floor = top * rng.uniform(0.7, 0.9)
        g = np.linspace(0, 1, height)[:, None, None]
        img = top * (1 - 0.15 * g) + 0 * g
        floor_y = int(height * rng.uniform(0.78, 0.86))
        img = np.broadcast_to(img, (height, width, 3)).copy()
        img[floor_y:] = floor
        self.image = img.astype(np.float32)

    def frame(self, t: int, dx: float, dy: float) -> np.ndarray:
        return self.image.copy()


class ClutterBackground(Background):
    """Target domain: a scrolling wall of random coloured shapes plus drifting non-person distractors."""

    def __init__(self, rng: np.random.Generator, width: int, height: int, n_frames: int, fps: float,
                 margin: int = 12, scroll: float | None = None) -> None:
        self.width, self.height, self.margin = width, height, margin
        self.scroll = (rng.uniform(-8, 8) if scroll is None else scroll) / fps  # px per frame
        span = int(abs(self.scroll) * n_frames) + 2 * margin + width + 2
        canvas_h = height + 2 * margin
        canvas = np.empty((canvas_h, span, 3), np.float32)
        canvas[:] = rng.uniform(0.3, 0.7, 3)
        yy, xx = np.mgrid[0:canvas_h, 0:span].astype(np.float32)
        base = canvas[0, 0].copy()
        for _ in range(int(span * canvas_h / 450)):
            cx, cy = rng.uniform(0, span), rng.uniform(0, canvas_h)
            rx, ry = rng.uniform(2, 14), rng.uniform(2, 14)
            x0, x1 = int(max(cx - rx, 0)), int(min(cx + rx + 1, span))
            y0, y1 = int(max(cy - ry, 0)), int(min(cy + ry + 1, canvas_h))
            sub = (slice(y0, y1), slice(x0, x1))
            if rng.random() < 0.5:
                mask = ((xx[sub] - cx) / rx) ** 2 + ((yy[sub] - cy) / ry) ** 2 <= 1
            else:
                mask = np.ones((y1 - y0, x1 - x0), bool)
            canvas[sub][mask] = 0.45 * base + 0.55 * rng.uniform(0.05, 0.95, 3)  # muted clutter
        canvas += rng.normal(0, 0.04, canvas.shape).astype(np.float32)
        self.canvas = canvas
        self.start = margin if self.scroll >= 0 else span - width - margin - 1
        n_distractors = int(rng.integers(1, 3))
        self.distractors = [(rng.uniform(0, width), rng.uniform(0.2, 0.8) * height, rng.uniform(-20, 20) / fps,
                             rng.uniform(-6, 6) / fps, rng.uniform(4, 10), rng.uniform(0.1, 0.9, 3),
                             rng.uniform(0, np.pi)) for _ in range(n_distractors)]
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5

    def frame(self, t: int, dx: float, dy: float) -> np.ndarray:
        ox = int(round(self.start + self.scroll * t - dx))
        oy = int(round(self.margin - dy))
        ox = int(np.clip(ox, 0, self.canvas.shape[1] - self.width))
        oy = int(np.clip(oy, 0, self.canvas.shape[0] - self.height))
        img = self.canvas[oy:oy + self.height, ox:ox + self.width].copy()
        for x, y, vx, vy, r, color, angle in self.distractors:
            cx = np.mod(x + vx * t, self.width) + dx
            cy = y + vy * t + dy
            a = angle + 0.1 * t
            u = (self.xx - cx) * np.cos(a) + (self.yy - cy) * np.sin(a)
            v = -(self.xx - cx) * np.sin(a) + (self.yy - cy) * np.cos(a)
            img[(np.abs(u) <= r) & (np.abs(v) <= r * 0.6)] = color
        return img


def render_video(
    kin: Kinematics, looks: list[Appearance], background: Background, width: int, height: int,
    shake: np.ndarray | None = None, noise_rng: np.random.Generator | None = None, noise_sigma: float = 0.0,
    dim_frames: np.ndarray | None = None, frames: np.ndarray | None = None, with_ids: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Draw the chosen `frames` (default all) as uint8 (N, H, W, 3); `with_ids` adds an (N, H, W) actor-index map
    (-1 background, OBJECT_ID objects). `kin` must already include the camera offsets `shake` (T, 2)."""
    n_actors, n_frames = kin.present.shape
    frames = np.arange(n_frames) if frames is None else np.asarray(frames)
    shake = np.zeros((n_frames, 2)) if shake is None else shake
    order = np.argsort(np.nanmax(np.where(kin.present, kin.cy[..., _HEAD], np.nan), axis=1), kind="stable") \
        if n_actors else []
    out = np.empty((frames.size, height, width, 3), np.uint8)
    ids = np.full((frames.size, height, width), -1, np.int16) if with_ids else None
    dim = set(np.asarray(dim_frames if dim_frames is not None else [], int).tolist())
    noise = None
    if noise_sigma > 0 and noise_rng is not None:  # a bank of noise frames: fresh draws cost more than drawing
        noise = noise_rng.standard_normal((5, height, width, 3), dtype=np.float32) * np.float32(noise_sigma)
    for n, t in enumerate(frames.tolist()):
        img = background.frame(t, float(shake[t, 0]), float(shake[t, 1]))
        id_map = ids[n] if ids is not None else None
        for i in order:
            if kin.present[i, t]:
                _paint_actor(img, id_map, int(i), kin, t, looks[i], width, height)
        if noise is not None:
            img += noise[(t * 3) % 5]
        if t in dim:
            img *= 0.25
        out[n] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return (out, ids) if with_ids else out


def _paint_actor(img: np.ndarray, ids: np.ndarray | None, actor: int, kin: Kinematics, t: int, look: Appearance,
                 width: int, height: int) -> None:
    vis = np.flatnonzero(kin.visible[actor, t])
    if vis.size == 0:
        return
    cx, cy = kin.cx[actor, t, vis], kin.cy[actor, t, vis]
    a, b = np.maximum(kin.a[actor, t, vis], 0.5), np.maximum(kin.b[actor, t, vis], 0.5)
    ux, uy = kin.ux[actor, t, vis], kin.uy[actor, t, vis]
    reach_x, reach_y = np.abs(a * ux) + np.abs(b * uy), np.abs(a * uy) + np.abs(b * ux)
    x0, x1 = max(int(np.floor((cx - reach_x).min())), 0), min(int(np.ceil((cx + reach_x).max())) + 1, width)
    y0, y1 = max(int(np.floor((cy - reach_y).min())), 0), min(int(np.ceil((cy + reach_y).max())) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    ys = np.arange(y0, y1, dtype=np.float32) + 0.5
    f32 = np.float32
    dx = xs[None, None, :] - cx.astype(f32)[:, None, None]
    dy = ys[None, :, None] - cy.astype(f32)[:, None, None]
    uxf, uyf = ux.astype(f32)[:, None, None], uy.astype(f32)[:, None, None]
    along = dx * uxf + dy * uyf
    across = dy * uxf - dx * uyf
    s2 = (along / a.astype(f32)[:, None, None]) ** 2
    q2 = (across / b.astype(f32)[:, None, None]) ** 2
    is_obj = vis == _OBJECT
    inside = s2 + q2 <= 1
    if is_obj[-1]:  # the object (always last) is a rounded square: |s|^6 + |q|^6 <= 1
        inside[-1] = s2[-1] ** 3 + q2[-1] ** 3 <= 1
    covered = inside.any(axis=0)
    if not covered.any():
        return
    top = (vis.size - 1 - np.argmax(inside[::-1], axis=0))  # painter's order: the last part drawn wins
    stripe = np.floor((look.freq * along + look.phase + 2 * kin.spin[actor, t]) / np.pi).astype(np.int32) & 1
    if look.texture == "checker":
        stripe ^= np.floor(look.freq * across / np.pi).astype(np.int32) & 1
    low = 0.66 if look.texture == "checker" else 0.72
    tex = np.take_along_axis(stripe, top[None], axis=0)[0]
    part = vis[top]
    tex = np.where((part == _HEAD) | (part == _OBJECT), f32(1.0), f32(low) + f32(1 - low) * tex)
    rgb = look.colors.astype(f32)[part] * tex[..., None]
    crop = img[y0:y1, x0:x1]
    crop[covered] = rgb[covered]
    if ids is not None:
        id_crop = ids[y0:y1, x0:x1]
        id_crop[covered] = np.where(part < BODY_PARTS, actor, OBJECT_ID)[covered]
