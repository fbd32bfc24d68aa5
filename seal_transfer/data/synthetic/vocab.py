"""Class vocabularies of the synthetic world: source atomic motions, complex activities, target and generic classes.

Every class is a motion pattern rendered by `motion.py`; `tier` says from which preset on a class exists
(0 tiny, 1 small, 2 paper), so the small world is a strict subset of the paper world.
"""

from __future__ import annotations

from dataclasses import dataclass

TIERS = {"tiny": 0, "small": 1, "paper": 2}


@dataclass(frozen=True)
class Atomic:
    name: str
    label_type: str  # POSE | PERSON_PERSON | PERSON_OBJECT
    channel: str  # "body" (whole body / locomotion) or "arm" (right arm, with or without an object)
    tier: int


# Master order = id order. Pairs that one frame cannot tell apart (same poses, different direction, speed or
# phase): walk / walk backward / run, raise arm / lower arm, lift / put down, sit down / stand up,
# push / pull, approach / move away.
ATOMIC: tuple[Atomic, ...] = (
    Atomic("walk", "POSE", "body", 0),
    Atomic("run", "POSE", "body", 0),
    Atomic("jump", "POSE", "body", 0),
    Atomic("wave arm", "POSE", "arm", 0),
    Atomic("raise arm", "POSE", "arm", 0),
    Atomic("lower arm", "POSE", "arm", 0),
    Atomic("lift object", "PERSON_OBJECT", "arm", 0),
    Atomic("put down object", "PERSON_OBJECT", "arm", 0),
    Atomic("approach", "PERSON_PERSON", "body", 0),
    Atomic("walk backward", "POSE", "body", 1),
    Atomic("rotate", "POSE", "body", 1),
    Atomic("shake", "POSE", "body", 1),
    Atomic("sit down", "POSE", "body", 1),
    Atomic("stand up", "POSE", "body", 1),
    Atomic("clap", "POSE", "arm", 1),
    Atomic("carry", "PERSON_OBJECT", "arm", 1),
    Atomic("push object", "PERSON_OBJECT", "arm", 1),
    Atomic("pull object", "PERSON_OBJECT", "arm", 1),
    Atomic("move away", "PERSON_PERSON", "body", 1),
    Atomic("hand over", "PERSON_PERSON", "arm", 1),
    Atomic("take object", "PERSON_PERSON", "arm", 1),
    Atomic("squat", "POSE", "body", 2),
    Atomic("bow", "POSE", "body", 2),
    Atomic("kick", "POSE", "body", 2),
    Atomic("shake head", "POSE", "body", 2),
    Atomic("punch", "POSE", "arm", 2),
    Atomic("stretch arms", "POSE", "arm", 2),
    Atomic("throw", "PERSON_OBJECT", "arm", 2),
    Atomic("shake object", "PERSON_OBJECT", "arm", 2),
)
ATOMIC_BY_NAME = {a.name: a for a in ATOMIC}
SEATED = "@seated"  # body step without a label: the actor holds the seated posture (between sit down / stand up)


@dataclass(frozen=True)
class Step:
    body: str | None
    arm: str | None
    lo: float  # duration range, seconds
    hi: float


@dataclass(frozen=True)
class Activity:
    """A complex activity: a script of steps. Joint activities have a second role with aligned steps."""

    name: str
    tier: int
    steps: tuple[Step, ...]
    partner_steps: tuple[Step, ...] | None = None  # role B (same durations as role A, step by step)

    def classes(self) -> set[str]:
        names = {n for s in self.steps + (self.partner_steps or ()) for n in (s.body, s.arm) if n}
        return names - {SEATED}


def S(body: str | None, arm: str | None, lo: float, hi: float) -> Step:  # noqa: N802 - terse script notation
    return Step(body, arm, lo, hi)


# Order = frequency rank in the source domain (Zipf weights), so classes inherit a long tail.
ACTIVITIES: tuple[Activity, ...] = (
    Activity("Walking the dog", 0, (S("walk", None, 2, 4), S("walk", "wave arm", 1, 2))),
    Activity("Cheerleading", 0, (S("jump", "wave arm", 1.5, 3), S(None, "raise arm", 1.2, 2),
                                 S(None, "lower arm", 1.2, 2))),
    Activity("Clean and jerk", 0, (S(None, "lift object", 1.5, 3), S(None, "put down object", 1.2, 2.4))),
    Activity("Long jump", 0, (S("run", None, 1.5, 3), S("jump", None, 1, 2))),
    Activity("Meeting a friend", 0, (S("approach", None, 1.5, 2.5), S(None, "wave arm", 1, 2)),
             (S(None, "wave arm", 1.5, 2.5), S(None, None, 1, 2))),
    Activity("Snatch", 0, (S(None, "lift object", 1.2, 2), S("jump", None, 1, 1.5), S(None, "put down object", 1, 2))),
    Activity("Zumba", 1, (S("shake", "clap", 1.5, 3), S("rotate", "wave arm", 1.5, 3), S("shake", None, 1, 2))),
    Activity("Mooping floor", 1, (S("walk", "push object", 2, 3.5), S("walk backward", "pull object", 1.5, 3))),
    Activity("Shoveling snow", 1, (S("walk", "carry", 2, 3), S(None, "put down object", 1.2, 2))),
    Activity("Passing an object", 1, (S("approach", "carry", 1.5, 2.5), S(None, "hand over", 1.2, 2)),
             (S(None, None, 1.5, 2.5), S(None, "take object", 1.2, 2))),
    Activity("Kneeling", 1, (S("sit down", None, 1, 1.5), S(SEATED, "clap", 1.2, 2.5), S("stand up", None, 1, 1.5))),
    Activity("Spinning", 1, (S("rotate", None, 2, 4),)),
    Activity("Doing step aerobics", 1, (S("jump", "clap", 1.5, 2.5), S("walk backward", None, 1, 2),
                                        S("walk", "raise arm", 1.2, 2))),
    Activity("Capoeira", 1, (S("approach", None, 1.2, 2), S("rotate", None, 1.5, 2.5), S("move away", None, 1.2, 2)),
             (S("shake", None, 1.2, 2), S("rotate", None, 1.5, 2.5), S("shake", None, 1.2, 2))),
    Activity("Cumbia", 1, (S("shake", "wave arm", 1.5, 2.5), S("rotate", "clap", 1.5, 2.5))),
    Activity("Doing karate", 2, (S(None, "punch", 1.5, 3), S("kick", None, 1, 2), S("bow", None, 1.5, 2.5))),
    Activity("Javelin throw", 2, (S("run", "carry", 1.5, 3), S(None, "throw", 1.2, 2))),
    Activity("Shot put", 2, (S("rotate", "carry", 1.5, 2.5), S(None, "throw", 1.2, 2))),
    Activity("Tai chi", 2, (S("squat", "stretch arms", 2, 4), S("bow", None, 1.5, 2.5))),
    Activity("Mixing drinks", 2, (S(None, "shake object", 1.5, 3), S("walk", "carry", 1, 2))),
    Activity("Playing congas", 2, (S("shake head", "clap", 1.5, 3),)),
    Activity("Doing kickboxing", 2, (S("kick", "punch", 1.5, 2.5), S("shake", None, 1, 2))),
)


@dataclass(frozen=True)
class TargetClass:
    """An AVA-like target class: active iff any conjunction of source classes is active (DNF), or a posture."""

    name: str
    rule: tuple[tuple[str, ...], ...]  # empty for the posture classes
    special: str | None = None  # "stand" | "sit"


TARGET: tuple[TargetClass, ...] = (
    TargetClass("stand", (), "stand"),  # no body-channel motion, standing: AVA's most frequent class
    TargetClass("sit", (), "sit"),
    TargetClass("walk", (("walk",), ("walk backward",), ("approach",), ("move away",))),
    TargetClass("run/jog", (("run",),)),
    TargetClass("jump/leap", (("jump",),)),
    TargetClass("crouch/kneel", (("squat",), ("sit down",))),
    TargetClass("get up", (("stand up",),)),
    TargetClass("bend/bow (at the waist)", (("bow",),)),
    TargetClass("dance", (("rotate", "wave arm"), ("shake", "clap"), ("rotate", "clap"))),
    TargetClass("spin", (("rotate",),)),
    TargetClass("hand wave", (("wave arm",),)),
    TargetClass("stretch arm", (("raise arm",), ("lower arm",), ("stretch arms",))),
    TargetClass("lift/pick up", (("lift object",),)),
    TargetClass("put down", (("put down object",),)),
    TargetClass("carry/hold (an object)", (("carry",), ("shake object",))),
    TargetClass("push (an object)", (("push object",), ("pull object",))),
    TargetClass("throw", (("throw",),)),
    TargetClass("hand clap", (("clap",),)),
    TargetClass("martial art", (("punch",), ("kick",))),
    TargetClass("give/serve (an object) to (a person)", (("hand over",),)),
    TargetClass("take (an object) from (a person)", (("take object",),)),
)

# Generic (Kinetics stand-in) classes: the whole clip's dominant motion; every actor in the clip does it.
GENERIC: tuple[tuple[str, str | None, int], ...] = (  # (class name, source motion or None for camera pan, tier)
    ("walking", "walk", 0),
    ("running", "run", 0),
    ("jumping", "jump", 0),
    ("waving", "wave arm", 0),
    ("lifting", "lift object", 0),
    ("spinning", "rotate", 1),
    ("clapping", "clap", 1),
    ("shaking", "shake", 1),
    ("camera panning", None, 1),
    ("punching", "punch", 2),
    ("squatting", "squat", 2),
)


def atomic_for(tier: int) -> list[Atomic]:
    return [a for a in ATOMIC if a.tier <= tier]


def activities_for(tier: int) -> list[Activity]:
    names = {a.name for a in atomic_for(tier)}
    return [act for act in ACTIVITIES if act.tier <= tier and act.classes() <= names]


def target_for(tier: int) -> list[TargetClass]:
    """Target classes whose rule can fire with this tier's source classes (rules pruned to available ones)."""
    names = {a.name for a in atomic_for(tier)}
    out = []
    for cls in TARGET:
        if cls.special == "sit":
            if "sit down" in names:
                out.append(cls)
            continue
        if cls.special:
            out.append(cls)
            continue
        rule = tuple(conj for conj in cls.rule if set(conj) <= names)
        if rule:
            out.append(TargetClass(cls.name, rule))
    return out


def generic_for(tier: int) -> list[tuple[str, str | None]]:
    return [(name, motion) for name, motion, t in GENERIC if t <= tier]
