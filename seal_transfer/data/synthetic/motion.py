"""Plans (who does what when) and kinematics (where every body part is in every frame) of the synthetic world.

An actor is seven parts drawn as filled (super-)ellipses: far arm, two legs, torso, head, near arm, object.
Atomic actions are motion patterns of a few pose parameters (docs/synthetic_world.md lists each one); several
run at once per actor on two channels, "body" (locomotion / whole body) and "arm" (right arm, maybe holding an
object). All randomness is in the plan; kinematics are a deterministic function of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seal_transfer.data.synthetic.vocab import ATOMIC, ATOMIC_BY_NAME, SEATED, Activity, Step

CODE = {a.name: i for i, a in enumerate(ATOMIC)}
NONE = -1
SEATED_SQUASH = 0.62
PARTS = ("arm_far", "leg_far", "leg_near", "torso", "head", "arm_near", "object")
BODY_PARTS = 6  # the object is not part of the person box
WALK_SPEED = 0.55  # body heights per second
RUN_SPEED = 1.4
APPROACH_SPEED = 0.45


@dataclass
class ActorPlan:
    first: int  # tube frames, inclusive
    last: int
    height: float  # px
    ground: float  # y of the feet, px
    x0: float
    facing0: int
    body: np.ndarray  # (T,) atomic code or -1
    arm: np.ndarray
    seated: np.ndarray  # (T,) bool: holding the seated posture
    partner: np.ndarray  # (T,) int: actor index the PERSON_PERSON action refers to, -1
    activities: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end_excl, name)

    def segments(self) -> list[tuple[int, int, int]]:
        """Atomic segments (start frame, end frame exclusive, code): maximal runs of one label per channel."""
        out: list[tuple[int, int, int]] = []
        for labels in (self.body, self.arm):
            change = np.flatnonzero(np.diff(np.concatenate([[NONE], labels, [NONE]])) != 0)
            for a, b in zip(change[:-1], change[1:]):
                if labels[a] != NONE:
                    out.append((int(a), int(b), int(labels[a])))
        return sorted(out)


def _frames(rng: np.random.Generator, step: Step, fps: float) -> int:
    return max(1, int(round(rng.uniform(step.lo, step.hi) * fps)))


def _write_steps(plan: ActorPlan, steps: tuple[Step, ...], lengths: list[int], start: int, partner: int) -> int:
    t = start
    for step, n in zip(steps, lengths):
        if step.body == SEATED:
            plan.seated[t:t + n] = True
        elif step.body:
            plan.body[t:t + n] = CODE[step.body]
        if step.arm:
            plan.arm[t:t + n] = CODE[step.arm]
        needs_partner = [s for s in (step.body, step.arm) if s and s != SEATED
                         and ATOMIC_BY_NAME[s].label_type == "PERSON_PERSON"]
        if needs_partner:
            plan.partner[t:t + n] = partner
        t += n
    return t


def plan_video(
    rng: np.random.Generator, n_frames: int, fps: float, width: int, height: int, activities: list[Activity],
    weights: np.ndarray, n_actors: int, height_range: tuple[float, float], p_joint: float, p_partial: float,
) -> list[ActorPlan]:
    """Place actors and script their activities: optionally one joint (two-person) activity, then solo ones."""
    solo = [i for i, a in enumerate(activities) if a.partner_steps is None]
    joint = [i for i, a in enumerate(activities) if a.partner_steps is not None]
    plans = []
    for _ in range(n_actors):
        h = rng.uniform(*height_range) * height
        first, last = 0, n_frames - 1
        if rng.random() < p_partial and n_frames > 4 * fps:
            if rng.random() < 0.5:
                first = int(rng.integers(int(fps), int(2 * fps)))
            else:
                last = n_frames - 1 - int(rng.integers(int(fps), int(2 * fps)))
        plans.append(ActorPlan(
            first=first, last=last, height=h, ground=rng.uniform(0.86, 0.97) * height,
            x0=rng.uniform(0.2, 0.8) * width, facing0=int(rng.choice([-1, 1])),
            body=np.full(n_frames, NONE, np.int64), arm=np.full(n_frames, NONE, np.int64),
            seated=np.zeros(n_frames, bool), partner=np.full(n_frames, -1, np.int64)))
    cursor = [p.first + int(rng.integers(int(0.2 * fps), int(1.0 * fps) + 1)) for p in plans]
    if n_actors >= 2 and joint and rng.random() < p_joint:
        w = weights[joint] / weights[joint].sum()
        act = activities[joint[int(rng.choice(len(joint), p=w))]]
        a, b = plans[0], plans[1]
        a.first = b.first = 0
        a.last = b.last = n_frames - 1
        lengths = [_frames(rng, s, fps) for s in act.steps]
        gap = 0.6 * (a.height + b.height) / 2
        side = int(rng.choice([-1, 1]))
        b.x0 = (0.5 - side * rng.uniform(0.2, 0.32)) * width  # B on one side, A comes from the other
        room = (0.5 + side * 0.38) * width - b.x0
        if act.steps[0].body == "approach":
            approach_s = min(lengths[0] / fps, max((abs(room) - gap) / (APPROACH_SPEED * a.height), 1.0))
            lengths[0] = int(round(approach_s * fps))
            a.x0 = b.x0 + side * min(abs(room), gap + APPROACH_SPEED * a.height * approach_s)
        else:
            a.x0 = b.x0 + side * gap
        a.facing0, b.facing0 = -side, side
        start = cursor[0]
        if start + sum(lengths) <= n_frames:
            end = _write_steps(a, act.steps, lengths, start, partner=1)
            _write_steps(b, act.partner_steps or (), lengths, start, partner=0)
            a.activities.append((start, end, act.name))
            b.activities.append((start, end, act.name))
            cursor[0] = cursor[1] = end + int(rng.integers(int(0.4 * fps), int(1.5 * fps) + 1))
    w = weights[solo] / weights[solo].sum()
    for i, plan in enumerate(plans):
        t = cursor[i]
        for _attempt in range(50):
            act = activities[solo[int(rng.choice(len(solo), p=w))]]
            lengths = [_frames(rng, s, fps) for s in act.steps]
            if t + sum(lengths) > plan.last + 1:
                if t + int(2 * fps) > plan.last:
                    break
                continue
            end = _write_steps(plan, act.steps, lengths, t, partner=-1)
            plan.activities.append((t, end, act.name))
            t = end + int(rng.integers(int(0.4 * fps), int(1.5 * fps) + 1))
    return plans


# ----------------------------------------------------------------------------------------------- kinematics


def _runs(labels: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: seconds since the current label run began, and the run's length in seconds."""
    n = labels.size
    change = np.flatnonzero(np.diff(np.concatenate([[-99], labels])) != 0)
    starts = np.zeros(n, np.int64)
    starts[change] = change
    starts = np.maximum.accumulate(starts)
    bounds = np.concatenate([change, [n]])
    lengths = np.repeat(np.diff(bounds), np.diff(bounds))
    return (np.arange(n) - starts) / fps, lengths / fps


def _sawtooth_up(tau: np.ndarray, period: float) -> np.ndarray:
    """0 -> 1 slowly over 80% of the period, then back to 0 fast: 'raise'. Time-reversed, it is 'lower'."""
    p = np.mod(tau, period) / period
    return np.where(p < 0.8, p / 0.8, (1 - p) / 0.2)


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


@dataclass
class Kinematics:
    """Per actor and frame: part ellipses (A, T, P) and which frames the actor is on screen."""

    cx: np.ndarray
    cy: np.ndarray
    a: np.ndarray  # half-length along the axis
    b: np.ndarray  # half-width
    ux: np.ndarray  # axis direction (unit)
    uy: np.ndarray
    visible: np.ndarray  # (A, T, P) bool (objects come and go)
    present: np.ndarray  # (A, T) bool
    spin: np.ndarray  # (A, T) texture phase (rotation makes textures slide)

    def boxes(self) -> np.ndarray:
        """(A, T, 4) x1, y1, x2, y2 in px: the union of the body parts' exact bounds."""
        half_w = np.sqrt((self.a * self.ux) ** 2 + (self.b * self.uy) ** 2)[..., :BODY_PARTS]
        half_h = np.sqrt((self.a * self.uy) ** 2 + (self.b * self.ux) ** 2)[..., :BODY_PARTS]
        cx, cy = self.cx[..., :BODY_PARTS], self.cy[..., :BODY_PARTS]
        return np.stack([(cx - half_w).min(-1), (cy - half_h).min(-1), (cx + half_w).max(-1),
                         (cy + half_h).max(-1)], axis=-1)

    def shifted(self, dx: np.ndarray, dy: np.ndarray) -> Kinematics:
        """The same scene seen by a shaking camera: (T,) offsets added to every part."""
        return Kinematics(self.cx + dx[None, :, None], self.cy + dy[None, :, None], self.a, self.b, self.ux, self.uy,
                          self.visible, self.present, self.spin)


def _limb(ox: np.ndarray, oy: np.ndarray, angle: np.ndarray, facing: np.ndarray, length: np.ndarray,
          width: np.ndarray) -> tuple[np.ndarray, ...]:
    """A limb hanging from (ox, oy): angle 0 = straight down, +pi/2 = forward (facing), pi = up.

    `facing` may be fractional (a rotating body foreshortens horizontally); the part shrinks with it.
    """
    vx, vy = np.sin(angle) * facing, np.cos(angle)
    norm = np.maximum(np.hypot(vx, vy), 1e-3)
    half = length * norm / 2
    return ox + vx * length / 2, oy + vy * length / 2, half, width + 0 * half, vx / norm, vy / norm


def simulate(plans: list[ActorPlan], fps: float, width: int, height: int) -> Kinematics:
    """Integrate positions (a frame loop: partners and borders interact) and pose every part (vectorised)."""
    n_actors, n_frames = len(plans), plans[0].body.size if plans else 0
    x = np.zeros((n_actors, n_frames))
    facing = np.zeros((n_actors, n_frames))
    pos = np.array([p.x0 for p in plans], float)
    face = np.array([p.facing0 for p in plans], float)
    lo, hi = 0.1 * width, 0.9 * width
    walkers = {CODE["walk"]: (WALK_SPEED, 1), CODE["run"]: (RUN_SPEED, 1)}
    if "walk backward" in CODE:
        walkers[CODE["walk backward"]] = (WALK_SPEED, -1)
    approach, away = CODE["approach"], CODE["move away"]
    handing = {CODE["hand over"], CODE["take object"]}
    for t in range(n_frames):
        for i, plan in enumerate(plans):
            c, partner = plan.body[t], plan.partner[t]
            if c in walkers:
                speed, sign = walkers[c]
                pos[i] += sign * face[i] * speed * plan.height / fps
                if not lo <= pos[i] <= hi:  # turn around at the border, keep walking
                    pos[i] = np.clip(pos[i], lo, hi)
                    face[i] = -face[i]
            elif c in (approach, away) and partner >= 0:
                toward = 1.0 if pos[partner] >= pos[i] else -1.0
                face[i] = toward if c == approach else -toward
                gap = 0.6 * (plan.height + plans[partner].height) / 2
                if c == away or abs(pos[partner] - pos[i]) > gap:
                    pos[i] = np.clip(pos[i] + face[i] * APPROACH_SPEED * plan.height / fps, lo, hi)
            if plan.arm[t] in handing and partner >= 0 and pos[partner] != pos[i]:
                face[i] = 1.0 if pos[partner] > pos[i] else -1.0
            x[i, t], facing[i, t] = pos[i], face[i]
    fields = [np.zeros((n_actors, n_frames, len(PARTS))) for _ in range(6)]
    visible = np.zeros((n_actors, n_frames, len(PARTS)), bool)
    present = np.zeros((n_actors, n_frames), bool)
    spin_phase = np.zeros((n_actors, n_frames))
    hands = np.zeros((n_actors, n_frames, 5))  # hand x, y, shoulder x, y, arm length
    for i, plan in enumerate(plans):
        parts, hand, spin = _pose(plan, x[i], facing[i], fps)
        for f, values in zip(fields, parts):
            f[i] = values
        hands[i], spin_phase[i] = hand, spin
        present[i, plan.first:plan.last + 1] = True
        visible[i, :, :BODY_PARTS] = present[i, :, None]
    _objects(plans, fields, visible, hands, x, facing, fps)
    return Kinematics(*fields, visible=visible, present=present, spin=spin_phase)


def _pose(plan: ActorPlan, x: np.ndarray, facing: np.ndarray, fps: float) -> tuple[list[np.ndarray], np.ndarray,
                                                                                     np.ndarray]:
    h = plan.height
    n = x.size
    tau_b, len_b = _runs(plan.body, fps)
    tau_a, _ = _runs(plan.arm, fps)
    body, arm = plan.body, plan.arm

    def is_b(name: str) -> np.ndarray:
        return body == CODE[name]

    def is_a(name: str) -> np.ndarray:
        return arm == CODE[name]

    zeros = np.zeros(n)
    leg_swing, jump, shake, bow, squash, head_dx = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy(), \
        np.ones(n), zeros.copy()
    kick = zeros.copy()
    spin = zeros.copy()
    walking = is_b("walk") | is_b("walk backward") | is_b("approach") | is_b("move away")
    leg_swing = np.where(walking, 0.45 * np.sin(2 * np.pi * 1.8 * tau_b), leg_swing)
    leg_swing = np.where(is_b("run"), 0.45 * np.sin(2 * np.pi * 3.6 * tau_b), leg_swing)
    bow = np.where(is_b("run"), 0.15, bow)
    jump = np.where(is_b("jump"), 0.3 * h * np.abs(np.sin(np.pi * 1.6 * tau_b)), jump)
    squash = np.where(plan.seated, SEATED_SQUASH, squash)
    squash = np.where(is_b("sit down"), 1 - (1 - SEATED_SQUASH) * _smooth(tau_b / np.maximum(len_b, 1e-3)), squash)
    squash = np.where(is_b("stand up"), SEATED_SQUASH + (1 - SEATED_SQUASH) * _smooth(tau_b / np.maximum(len_b, 1e-3)),
                      squash)
    squash = np.where(is_b("squat"), 1 - 0.35 * (1 - np.cos(2 * np.pi * tau_b / 1.6)) / 2, squash)
    spin = np.where(is_b("rotate"), 2 * np.pi * 0.8 * tau_b, spin)
    shake = np.where(is_b("shake"), 0.06 * h * np.sin(2 * np.pi * 5 * tau_b), shake)
    bow = np.where(is_b("bow"), 0.7 * (1 - np.cos(2 * np.pi * tau_b / 2.0)) / 2, bow)
    kick = np.where(is_b("kick"), 1.3 * np.maximum(np.sin(2 * np.pi * 1.2 * tau_b), 0) ** 2, kick)
    head_dx = np.where(is_b("shake head"), 0.05 * h * np.sin(2 * np.pi * 4 * tau_b), head_dx)

    # Arms: angle 0 = down, pi/2 = forward, pi = up; the far arm swings against the legs unless an action uses it.
    near = 0.15 + np.where(walking | is_b("run"), -0.5 * leg_swing, 0)
    far = -0.1 + np.where(walking | is_b("run"), 0.5 * leg_swing, 0)
    ext = np.ones(n)
    near = np.where(is_a("wave arm"), 2.6 + 0.4 * np.sin(2 * np.pi * 2.5 * tau_a), near)
    raise_cycle = _sawtooth_up(tau_a, 1.2)
    lower_cycle = _sawtooth_up(-tau_a + 1.2 * 8, 1.2)  # the same motion, time reversed
    near = np.where(is_a("raise arm") | is_a("lift object"), 0.15 + 2.75 * raise_cycle, near)
    near = np.where(is_a("lower arm") | is_a("put down object"), 0.15 + 2.75 * lower_cycle, near)
    clap = 0.25 * np.sin(2 * np.pi * 3 * tau_a)
    near = np.where(is_a("clap"), 1.35 + clap, near)
    far = np.where(is_a("clap"), 1.35 - clap, far)
    near = np.where(is_a("carry"), 0.5, near)
    near = np.where(is_a("push object") | is_a("pull object"), 1.45, near)
    far = np.where(is_a("push object") | is_a("pull object"), 1.35, far)
    near = np.where(is_a("hand over") | is_a("take object"), 1.4, near)
    near = np.where(is_a("punch"), 0.3 + 1.25 * np.maximum(np.sin(2 * np.pi * 2 * tau_a), 0) ** 3, near)
    ext = np.where(is_a("punch"), 1 + 0.2 * np.maximum(np.sin(2 * np.pi * 2 * tau_a), 0) ** 3, ext)
    stretch = 0.15 + 2.8 * (1 - np.cos(2 * np.pi * tau_a / 3.0)) / 2
    near = np.where(is_a("stretch arms"), stretch, near)
    far = np.where(is_a("stretch arms"), stretch, far)
    throw_p = np.mod(tau_a, 1.5) / 1.5
    throw_angle = np.where(throw_p < 0.45, 0.2 - 1.4 * throw_p / 0.45,
                           np.where(throw_p < 0.6, -1.2 + 3.6 * (throw_p - 0.45) / 0.15,
                                    2.4 - 2.2 * (throw_p - 0.6) / 0.4))
    near = np.where(is_a("throw"), throw_angle, near)
    near = np.where(is_a("shake object"), 1.0 + 0.18 * np.sin(2 * np.pi * 5 * tau_a), near)

    # Geometry. A rotating body is seen edge-on part of the time: horizontal extents scale by cos(spin).
    eff = facing * np.where(is_b("rotate"), np.cos(spin), 1.0)
    width = np.where(is_b("rotate"), np.maximum(np.abs(np.cos(spin)), 0.4), 1.0)
    feet_y = plan.ground - jump
    leg_len = 0.47 * h * squash
    hip_x, hip_y = x + shake, feet_y - leg_len * np.where(squash < 1, 0.9, 1.0)
    torso_len = 0.34 * h
    dx, dy = np.sin(bow) * facing, -np.cos(bow)
    torso = (hip_x + dx * torso_len / 2, hip_y + dy * torso_len / 2, torso_len / 2 + zeros, 0.12 * h * width,
             dx + zeros, dy + zeros)
    sh_x, sh_y = hip_x + dx * torso_len * 0.9, hip_y + dy * torso_len * 0.9
    r_head = 0.085 * h
    head = (hip_x + dx * (torso_len + r_head) + head_dx, hip_y + dy * (torso_len + r_head), r_head + zeros,
            r_head + zeros, 1 + zeros, zeros)
    # Bent knees when crouched: legs splay forward/back so the figure keeps its feet on the ground.
    bend = np.arccos(np.clip(squash, 0.3, 1)) * 0.8
    leg_near = _limb(hip_x, hip_y, leg_swing + bend + kick, eff, leg_len / np.cos(bend) * 0.95, 0.055 * h + zeros)
    leg_far = _limb(hip_x, hip_y, -leg_swing - bend * 0.3, eff, leg_len / np.cos(bend * 0.3) * 0.95,
                    0.055 * h + zeros)
    arm_len = 0.36 * h * ext
    arm_near = _limb(sh_x, sh_y, near, eff, arm_len, 0.045 * h + zeros)
    arm_far = _limb(sh_x, sh_y, far, eff, 0.36 * h + zeros, 0.045 * h + zeros)
    hand = np.stack([sh_x + np.sin(near) * eff * arm_len, sh_y + np.cos(near) * arm_len, sh_x, sh_y, arm_len], axis=-1)
    obj = (zeros, zeros, zeros, zeros, 1 + zeros, zeros)
    parts = [arm_far, leg_far, leg_near, torso, head, arm_near, obj]
    return [np.stack([p[k] for p in parts], axis=-1) for k in range(6)], hand, spin


def _objects(plans: list[ActorPlan], fields: list[np.ndarray], visible: np.ndarray, hands: np.ndarray,
             x: np.ndarray, facing: np.ndarray, fps: float) -> None:
    """Place each actor's object: in the hand, on the ground in front (push/pull), in flight (throw), or passed."""
    cx, cy, a, b, ux, uy = fields
    k = PARTS.index("object")
    for i, plan in enumerate(plans):
        h, arm = plan.height, plan.arm
        small = 0.075 * h
        in_hand = np.isin(arm, [CODE[n] for n in ("lift object", "put down object", "carry", "shake object")])
        cx[i, in_hand, k], cy[i, in_hand, k] = hands[i, in_hand, 0], hands[i, in_hand, 1]
        a[i, in_hand, k] = b[i, in_hand, k] = small
        visible[i, in_hand, k] = True
        ground = np.isin(arm, [CODE["push object"], CODE["pull object"]])
        big = 0.16 * h
        cx[i, ground, k] = x[i, ground] + facing[i, ground] * (0.36 * h + big)
        cy[i, ground, k] = plan.ground - big
        a[i, ground, k] = b[i, ground, k] = big
        visible[i, ground, k] = True
        throwing = arm == CODE["throw"]
        if throwing.any():
            tau, _ = _runs(arm, fps)
            p = np.mod(tau, 1.5) / 1.5
            held = throwing & (p < 0.6)
            cx[i, held, k], cy[i, held, k] = hands[i, held, 0], hands[i, held, 1]
            flying = throwing & (p >= 0.6)
            dt = (p - 0.6) * 1.5
            # released where the hand is at p = 0.6 (arm at 2.4 rad), then a ballistic arc forward
            rel_x = hands[i, :, 2] + np.sin(2.4) * facing[i] * hands[i, :, 4]
            rel_y = hands[i, :, 3] + np.cos(2.4) * hands[i, :, 4]
            cx[i, flying, k] = rel_x[flying] + facing[i, flying] * 1.2 * h * dt[flying]
            cy[i, flying, k] = rel_y[flying] - 1.0 * h * dt[flying] + 2.5 * h * dt[flying] ** 2
            a[i, throwing, k] = b[i, throwing, k] = small
            visible[i, throwing, k] = True
        giving = arm == CODE["hand over"]
        if giving.any():
            tau, length = _runs(arm, fps)
            partner = plan.partner
            idx = np.flatnonzero(giving & (partner >= 0))
            frac = _smooth(tau[idx] / np.maximum(length[idx], 1e-3))
            other = hands[partner[idx], idx, :2]
            cx[i, idx, k] = hands[i, idx, 0] * (1 - frac) + other[:, 0] * frac
            cy[i, idx, k] = hands[i, idx, 1] * (1 - frac) + other[:, 1] * frac
            a[i, idx, k] = b[i, idx, k] = small
            visible[i, idx, k] = True
    ux[..., k], uy[..., k] = 1.0, 0.0
