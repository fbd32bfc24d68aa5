"""AVA file formats: read, validate and write the real files (and our own in the same layouts).

Every reader reports a user mistake as one line naming `file:line` and the problem; every writer is atomic.
Timing (fps, the second at which a file starts, the keyframe grid) is per-video metadata with AVA's values as
defaults, never an assumption baked into code: pytorchvideo and PySlowFast hard-code 30 fps and 902..1798 and
silently drop everything else.
"""

from __future__ import annotations

import csv
import io
import math
import pickle
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seal_transfer.errors import UserError, located
from seal_transfer.utils.fileio import atomic_write

# Column layouts of the AVA-style CSVs this toolkit reads. All share `video_id,timestamp,x1,y1,x2,y2` first.
#   gt          official GT:                  ...,action_id,person_id
#   detections  official evaluator input:     ...,action_id,score
#   boxes       person-detector (PySlowFast): ...,label-or-empty-or--1,score
#   pseudo      our pseudo labels:            ...,action_id,person_id,score
KINDS: dict[str, tuple[str, ...]] = {
    "gt": ("action_id", "person_id"),
    "detections": ("action_id", "score"),
    "boxes": ("action_id", "score"),
    "pseudo": ("action_id", "person_id", "score"),
}
BOX_TOLERANCE = 0.01  # detectors emit slightly-out-of-range coordinates; beyond this a box is an error


@dataclass
class AvaTable:
    """Rows of an AVA-layout CSV as column arrays (one row per (box, action) pair)."""

    video_ids: np.ndarray  # (N,) numpy unicode ('U') array
    timestamps: np.ndarray  # (N,) float64, seconds in movie time
    boxes: np.ndarray  # (N, 4) float32, normalised x1, y1, x2, y2
    action_ids: np.ndarray  # (N,) int64, -1 where the row names no action
    person_ids: np.ndarray  # (N,) int64, -1 where the file has no person id
    scores: np.ndarray  # (N,) float32, 1.0 where the file has no score
    source: str = ""
    # Reader warnings about the file, one line each (e.g. how many boxes are inverted or empty).
    notes: list[str] = field(default_factory=list, repr=False, compare=False)
    # Optional factorisation of video_ids that the fast reader gets for free: video_ids == vocab[codes], vocab
    # sorted or not. Derived tables (select, concat) do not carry it; evaluators use it to skip hashing strings.
    video_codes: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @classmethod
    def empty(cls, source: str = "") -> AvaTable:
        return cls(
            video_ids=np.zeros(0, dtype="U1"),
            timestamps=np.zeros(0, dtype=np.float64),
            boxes=np.zeros((0, 4), dtype=np.float32),
            action_ids=np.zeros(0, dtype=np.int64),
            person_ids=np.zeros(0, dtype=np.int64),
            scores=np.zeros(0, dtype=np.float32),
            source=source,
        )

    @classmethod
    def from_columns(
        cls,
        video_ids: Sequence[str] | np.ndarray,
        timestamps: Sequence[float] | np.ndarray,
        boxes: Sequence[Sequence[float]] | np.ndarray,
        action_ids: Sequence[int] | np.ndarray | None = None,
        person_ids: Sequence[int] | np.ndarray | None = None,
        scores: Sequence[float] | np.ndarray | None = None,
        source: str = "",
    ) -> AvaTable:
        n = len(video_ids)
        return cls(
            video_ids=np.asarray(video_ids, dtype=str).reshape(n),
            timestamps=np.asarray(timestamps, dtype=np.float64).reshape(n),
            boxes=np.asarray(boxes, dtype=np.float32).reshape(n, 4),
            action_ids=np.full(n, -1, np.int64) if action_ids is None else np.asarray(action_ids, np.int64),
            person_ids=np.full(n, -1, np.int64) if person_ids is None else np.asarray(person_ids, np.int64),
            scores=np.ones(n, np.float32) if scores is None else np.asarray(scores, np.float32),
            source=source,
        )

    @classmethod
    def from_box_scores(cls, boxes: AvaTable, scores: np.ndarray, class_ids: Sequence[int]) -> AvaTable:
        """Detection rows, one per (box, class) pair: `boxes` gives one row per box, `scores` (boxes x classes)
        one column per entry of `class_ids`. The layout every detection CSV of the toolkit is written in."""
        n, k = len(boxes), len(class_ids)
        scores = np.asarray(scores, np.float32)
        if scores.shape != (n, k):
            raise ValueError(f"scores of shape {scores.shape} for {n} boxes and {k} classes")
        return cls(
            video_ids=np.repeat(boxes.video_ids, k),
            timestamps=np.repeat(boxes.timestamps, k),
            boxes=np.repeat(boxes.boxes, k, axis=0),
            action_ids=np.tile(np.asarray(class_ids, dtype=np.int64), n),
            person_ids=np.repeat(boxes.person_ids, k),
            scores=scores.reshape(-1),
        )

    def select(self, mask_or_index: np.ndarray) -> AvaTable:
        return AvaTable(
            video_ids=self.video_ids[mask_or_index],
            timestamps=self.timestamps[mask_or_index],
            boxes=self.boxes[mask_or_index],
            action_ids=self.action_ids[mask_or_index],
            person_ids=self.person_ids[mask_or_index],
            scores=self.scores[mask_or_index],
            source=self.source,
        )

    @staticmethod
    def concat(tables: Sequence[AvaTable]) -> AvaTable:
        if not tables:
            return AvaTable.empty()
        return AvaTable(
            video_ids=np.concatenate([t.video_ids for t in tables]),
            timestamps=np.concatenate([t.timestamps for t in tables]),
            boxes=np.concatenate([t.boxes for t in tables]),
            action_ids=np.concatenate([t.action_ids for t in tables]),
            person_ids=np.concatenate([t.person_ids for t in tables]),
            scores=np.concatenate([t.scores for t in tables]),
            source=tables[0].source,
        )

    def keyframe_keys(self) -> list[tuple[str, float]]:
        """Distinct (video_id, timestamp) keyframes in first-seen order."""
        seen: dict[tuple[str, float], None] = {}
        for vid, ts in zip(self.video_ids.tolist(), self.timestamps.tolist()):
            seen.setdefault((vid, ts), None)
        return list(seen)


class _CodedAvaTable(AvaTable):
    """An AvaTable from the fast reader: `video_ids` is built from `video_codes` when first read.

    The evaluators only need the codes, so a 1.5M-row detection file never pays for (or holds) the string column
    unless something asks for it. Behaves as an AvaTable in every other way.
    """

    @property  # type: ignore[override]
    def video_ids(self) -> np.ndarray:
        ids = self.__dict__.get("_video_ids")
        if ids is None:
            codes, vocab = self.video_codes  # type: ignore[misc]
            ids = self.__dict__["_video_ids"] = vocab[codes]
        return ids

    @video_ids.setter
    def video_ids(self, value: np.ndarray | None) -> None:
        self.__dict__["_video_ids"] = value


def format_timestamp(ts: float) -> str:
    """AVA writes integer seconds zero-padded to 4 digits (`0902`); other times keep 3 decimals."""
    return f"{int(round(ts)):04d}" if float(ts).is_integer() else f"{ts:.3f}"


def _open_text(path: Path) -> str:
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None


def _data_lines(text: str) -> Iterable[tuple[int, list[str]]]:
    """Yield (1-based line number, fields) for non-empty, non-comment lines; comma or tab separated."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if "," in stripped:
            fields = next(csv.reader([stripped]))
        else:
            fields = stripped.split()
        yield lineno, [f.strip() for f in fields]


def _number(path: Path, lineno: int, name: str, text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise located(path, lineno, f"{name} '{text}' is not a number") from None
    if kind is float and not math.isfinite(value):
        raise located(path, lineno, f"{name} '{text}' is not finite")
    if kind is int and not -(1 << 63) <= value < 1 << 63:
        raise located(path, lineno, f"{name} '{text}' does not fit a 64-bit integer")
    return value


BOX_COLUMNS = ("x1", "y1", "x2", "y2")

# What happens to rows whose box is inverted (x2 < x1 or y2 < y1) or has zero width or height. Such rows are
# read, as the official AVA reader reads them, counted, and reported in one warning line per file.
_DEGENERATE_POLICY = {
    "gt": "kept, as the official AVA reader keeps them (in evaluation such a ground-truth box counts and is never "
          "matched)",
    "detections": "kept: the evaluator drops them after the top-k cut, as the official code does (neither true nor "
                  "false positives)",
    "boxes": "kept as given",
    "pseudo": "kept as given",
}


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _degenerate_note(path: Path, kind: str, n_inverted: int, n_zero: int, line: int, box: Sequence[float]) -> str:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (
        f"{path}: {_rows(n_inverted)} with a box that has x2 < x1 or y2 < y1 and {_rows(n_zero)} with a box of zero "
        f"width or height (first: line {line}, box ({x1}, {y1}, {x2}, {y2})); {_DEGENERATE_POLICY[kind]}"
    )


def _data_row_line(path: Path, row: int) -> tuple[int, str]:
    """(1-based line number, stripped text) of the `row`-th (0-based) data line: blank and `#` lines are skipped,
    as `_data_lines` does."""
    seen = -1
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                seen += 1
                if seen == row:
                    return lineno, stripped
    raise ValueError(f"{path} has no data row {row}")


class _Vocabulary:
    """Distinct texts of a dictionary-encoded column across record batches, each batch's codes mapped to one index
    (pyarrow gives every batch its own dictionary)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def codes(self, chunk: object) -> np.ndarray:
        words = chunk.dictionary.to_pylist()  # type: ignore[attr-defined]
        remap = np.asarray([self.index.setdefault(w, len(self.index)) for w in words], dtype=np.int32)
        return remap[chunk.indices.to_numpy()]  # type: ignore[attr-defined]


class _Integers:
    """Integer texts of a dictionary-encoded column → int64 through Python's int(), once per distinct text: what
    the exact parser does (pyarrow's own integer parser also takes forms int() refuses, such as 0x10)."""

    def __init__(self, empty: int | None = None) -> None:
        self.empty = empty  # the value of an empty field (-1 for person-detector boxes); None: not a number
        self.value: dict[str, int | None] = {}

    def _int(self, text: str) -> int | None:
        if self.empty is not None and not text.strip():
            return self.empty
        try:
            value = int(text)
        except ValueError:
            return None
        return value if -(1 << 63) <= value < 1 << 63 else None

    def values(self, chunk: object) -> np.ndarray | None:
        lookup = []
        for text in chunk.dictionary.to_pylist():  # type: ignore[attr-defined]
            if text not in self.value:
                self.value[text] = self._int(text)
            value = self.value[text]
            if value is None:
                return None
            lookup.append(value)
        return np.asarray(lookup, dtype=np.int64)[chunk.indices.to_numpy()]  # type: ignore[attr-defined]


def _id_is_plain(text: str) -> bool:
    """An id the exact parser reads the same: not empty, not blank-padded, not a comment, one str.splitlines line."""
    return bool(text) and text == text.strip() and not text.startswith("#") and text.splitlines() == [text]


def _parse_fast(path: Path, kind: str) -> AvaTable | None:
    """pyarrow's multithreaded CSV reader for well-formed files (1.5M rows in a fraction of a second).

    None means "use the exact parser": any irregularity (wrong column count, a value that is not a number, an
    empty or blank-padded field, a comment line, a value out of range) sends the file there, so that the row-by-row
    parser names the offending line; the fast path never decides an error itself. When it succeeds, its table is
    the one the exact parser would build (same float64 parse, clipped, then stored as float32). The parsed record
    batches are checked and copied into the table's arrays one at a time.
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:  # pragma: no cover - pyarrow is a dependency; without it every file takes the exact parser
        return None
    tail = KINDS[kind]
    names = ["video_id", "timestamp", *BOX_COLUMNS, *tail]
    # Ids and integers are read as dictionary-encoded text (integers then go through int()); pyarrow's float
    # parser agrees with float() wherever it succeeds.
    words = pa.dictionary(pa.int32(), pa.string())
    types = {"video_id": words, "timestamp": pa.float64()}
    types.update({name: pa.float64() for name in BOX_COLUMNS})
    types.update({name: pa.float64() if name == "score" else words for name in tail})
    with path.open("rb") as handle:
        if handle.read(3) == b"\xef\xbb\xbf":  # a byte-order mark: the exact parser keeps it in the first id
            return None
    pool = pa.default_memory_pool()
    try:
        arrow = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=True),
            parse_options=pa_csv.ParseOptions(delimiter=","),
            convert_options=pa_csv.ConvertOptions(
                column_types=types, null_values=[""], strings_can_be_null=False, quoted_strings_can_be_null=False
            ),
            memory_pool=pool,
        )
    except (pa.ArrowException, ValueError, OSError):
        return None
    n = arrow.num_rows
    if n == 0:
        return None
    batches = arrow.to_batches()
    del arrow
    codes = np.empty(n, dtype=np.int32)
    timestamps = np.empty(n, dtype=np.float64)
    boxes = np.empty((n, 4), dtype=np.float32)
    inverted = np.empty(n, dtype=bool)
    flat = np.empty(n, dtype=bool)
    actions = np.empty(n, dtype=np.int64)
    persons = np.full(n, -1, dtype=np.int64) if "person_id" not in tail else np.empty(n, dtype=np.int64)
    scores = np.ones(n, dtype=np.float32) if "score" not in tail else np.empty(n, dtype=np.float32)
    videos = _Vocabulary()
    action_ints, person_ints = _Integers(empty=-1 if kind == "boxes" else None), _Integers()
    column = {name: i for i, name in enumerate(names)}
    start = 0
    while batches:
        batch = batches.pop(0)  # released once copied
        stop = start + batch.num_rows
        rows = slice(start, stop)
        if any(batch.column(i).null_count for i in range(len(names))):
            return None  # an empty number
        codes[rows] = videos.codes(batch.column(column["video_id"]))
        ts = batch.column(column["timestamp"]).to_numpy()
        if not np.isfinite(ts).all():
            return None
        timestamps[rows] = ts
        coords = [batch.column(column[name]).to_numpy() for name in BOX_COLUMNS]
        # Range and shape are tested in float64, as parsed (NaN fails the range test too).
        if not all(c.min() >= -BOX_TOLERANCE and c.max() <= 1 + BOX_TOLERANCE for c in coords):
            return None
        x1, y1, x2, y2 = coords
        np.logical_or(x2 < x1, y2 < y1, out=inverted[rows])
        np.logical_or(x2 == x1, y2 == y1, out=flat[rows])
        for i, c in enumerate(coords):
            boxes[rows, i] = c
        action = action_ints.values(batch.column(column["action_id"]))
        if action is None:
            return None
        actions[rows] = action
        if "person_id" in tail:
            person = person_ints.values(batch.column(column["person_id"]))
            if person is None:
                return None
            persons[rows] = person
        if "score" in tail:
            score = batch.column(column["score"]).to_numpy()
            if not np.isfinite(score).all():
                return None
            scores[rows] = score
        start = stop
    del batch
    pool.release_unused()  # everything is in NumPy arrays now; give the parser's memory back at once
    vocab = list(videos.index)
    if not all(_id_is_plain(v) for v in vocab):
        return None
    if kind == "boxes":
        if not ((actions >= 1) | (actions == -1)).all():
            return None
    elif not (actions >= 1).all():
        return None
    np.clip(boxes, 0.0, 1.0, out=boxes)  # clipping commutes with the (monotone) float32 rounding
    notes: list[str] = []
    zero_area = flat & ~inverted
    n_inverted, n_zero = int(inverted.sum()), int(zero_area.sum())
    if n_inverted or n_zero:
        line, text = _data_row_line(path, int(np.flatnonzero(inverted | zero_area)[0]))
        box = [float(v) for v in next(csv.reader([text]))[2:6]]
        notes.append(_degenerate_note(path, kind, n_inverted, n_zero, line, box))
    return _CodedAvaTable(
        video_ids=None,  # type: ignore[arg-type]  # built from video_codes on first use
        timestamps=timestamps,
        boxes=boxes,
        action_ids=actions,
        person_ids=persons,
        scores=scores,
        source=str(path),
        notes=notes,
        video_codes=(codes, np.asarray(vocab, dtype=str)),
    )


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a file")


def read_ava_csv(path: str | Path, kind: str = "gt", *, warn: bool = True) -> AvaTable:
    """Read an AVA-layout CSV (`kind` in KINDS) and validate every row; errors name `file:line`.

    Rows whose box is inverted (x2 < x1 or y2 < y1) or empty are read, as the official reader reads them; their
    count is one line in `table.notes`, which `warn=True` also prints to stderr as `warning: ...`.
    """
    path = Path(path)
    if kind not in KINDS:
        raise ValueError(f"unknown AVA csv kind {kind!r}; expected one of {sorted(KINDS)}")
    _check_readable(path)
    table = _parse_fast(path, kind)
    if table is None:
        table = _parse_exact(path, kind)
    if warn:
        for note in table.notes:
            print(f"warning: {note}", file=sys.stderr)
    return table


def _parse_exact(path: Path, kind: str) -> AvaTable:
    """Row-by-row parser: slow, and the one that names the line of the first bad row."""
    tail = KINDS[kind]
    ncols = 6 + len(tail)
    text = _open_text(path)
    vids: list[str] = []
    stamps: list[float] = []
    boxes: list[tuple[float, float, float, float]] = []
    actions: list[int] = []
    persons: list[int] = []
    scores: list[float] = []
    n_inverted = n_zero = 0
    first_degenerate: tuple[int, tuple[float, ...]] | None = None
    for lineno, fields in _data_lines(text):
        if len(fields) != ncols:
            raise located(
                path,
                lineno,
                f"expected {ncols} columns (video_id,timestamp,x1,y1,x2,y2,{','.join(tail)}), found {len(fields)}",
            )
        vid = fields[0]
        if not vid:
            raise located(path, lineno, "video_id is empty")
        ts = float(_number(path, lineno, "timestamp", fields[1], float))
        box = tuple(float(_number(path, lineno, n, fields[2 + i], float)) for i, n in enumerate(BOX_COLUMNS))
        x1, y1, x2, y2 = box
        for name, value in zip(BOX_COLUMNS, box):
            if value < -BOX_TOLERANCE or value > 1 + BOX_TOLERANCE:
                raise located(path, lineno, f"{name} {value} is outside [0, 1] (boxes are normalised)")
        inverted = x2 < x1 or y2 < y1
        zero_area = not inverted and (x2 == x1 or y2 == y1)
        n_inverted += inverted
        n_zero += zero_area
        if (inverted or zero_area) and first_degenerate is None:
            first_degenerate = (lineno, box)
        values = dict(zip(tail, fields[6:]))
        action_text = values["action_id"]
        if kind == "boxes" and action_text in ("", "-1"):
            action = -1
        else:
            action = int(_number(path, lineno, "action_id", action_text, int))
            if action < 1 and not (kind == "boxes" and action == -1):
                raise located(path, lineno, f"action_id {action} is not a positive label id")
        person = int(_number(path, lineno, "person_id", values["person_id"], int)) if "person_id" in values else -1
        score = float(_number(path, lineno, "score", values["score"], float)) if "score" in values else 1.0
        vids.append(vid)
        stamps.append(ts)
        boxes.append((min(max(x1, 0.0), 1.0), min(max(y1, 0.0), 1.0), min(max(x2, 0.0), 1.0), min(max(y2, 0.0), 1.0)))
        actions.append(action)
        persons.append(person)
        scores.append(score)
    if not vids:
        return AvaTable.empty(source=str(path))
    table = AvaTable.from_columns(vids, stamps, boxes, actions, persons, scores, source=str(path))
    if first_degenerate is not None:
        table.notes.append(_degenerate_note(path, kind, n_inverted, n_zero, *first_degenerate))
    return table


def write_ava_csv(path: str | Path, table: AvaTable, kind: str = "gt") -> None:
    """Write `table` in the column layout `kind`, atomically, with AVA's number formatting."""
    if kind not in KINDS:
        raise ValueError(f"unknown AVA csv kind {kind!r}")
    tail = KINDS[kind]
    buf = io.StringIO()
    for i in range(len(table)):
        x1, y1, x2, y2 = (float(v) for v in table.boxes[i])
        cols = [
            str(table.video_ids[i]),
            format_timestamp(float(table.timestamps[i])),
            f"{x1:.3f}",
            f"{y1:.3f}",
            f"{x2:.3f}",
            f"{y2:.3f}",
        ]
        for name in tail:
            if name == "action_id":
                a = int(table.action_ids[i])
                cols.append("" if (kind == "boxes" and a < 0) else str(a))
            elif name == "person_id":
                cols.append(str(int(table.person_ids[i])))
            else:
                cols.append(f"{float(table.scores[i]):.6f}")
        buf.write(",".join(cols) + "\n")
    with atomic_write(path) as handle:
        handle.write(buf.getvalue())


# --------------------------------------------------------------------------------------------- label maps


@dataclass
class LabelMap:
    """Class ids in file order with their names (and `label_type` where the file has one)."""

    ids: list[int]
    names: dict[int, str]
    types: dict[int, str] = field(default_factory=dict)
    source: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self) -> dict[int, int]:
        """Map label id → contiguous 0-based column index (the model's output order)."""
        return {cid: i for i, cid in enumerate(self.ids)}

    def subset(self, ids: Iterable[int]) -> LabelMap:
        keep = [i for i in self.ids if i in set(ids)]
        return LabelMap(
            keep, {i: self.names[i] for i in keep}, {i: t for i, t in self.types.items() if i in keep}, self.source
        )


_BLOCK_RE = re.compile(r"(label|item)\s*\{(.*?)\}", re.S)
_FIELD_RE = re.compile(r"(\w+)\s*:\s*(\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s}]+)")


def read_labelmap(path: str | Path) -> LabelMap:
    """Read both AVA label-map layouts: 80-class `label {name label_id label_type}` and 60-class `item {name id}`."""
    path = Path(path)
    text = _open_text(path)
    # Blank out comments so ids in them do not count, keeping offsets (and hence line numbers) intact.
    clean = re.sub(r"#[^\n]*", lambda m: " " * len(m.group(0)), text)
    ids: list[int] = []
    names: dict[int, str] = {}
    types: dict[int, str] = {}
    for block in _BLOCK_RE.finditer(clean):
        lineno = clean.count("\n", 0, block.start()) + 1
        fields: dict[str, str] = {}
        for m in _FIELD_RE.finditer(block.group(2)):
            value = m.group(2)
            if value[:1] in "\"'":
                value = re.sub(r"\\(.)", r"\1", value[1:-1])  # pbtxt escapes: \" → ", \\ → \
            fields[m.group(1)] = value
        id_text = fields.get("label_id", fields.get("id"))
        if id_text is None:
            raise located(path, lineno, f"{block.group(1)} block has no id (expected 'id:' or 'label_id:')")
        if "name" not in fields:
            raise located(path, lineno, f"{block.group(1)} block with id {id_text} has no name")
        try:
            cid = int(id_text)
        except ValueError:
            raise located(path, lineno, f"id '{id_text}' is not an integer") from None
        if cid in names:
            raise located(path, lineno, f"id {cid} appears twice")
        ids.append(cid)
        names[cid] = fields["name"]
        if "label_type" in fields:
            types[cid] = fields["label_type"]
    if not ids:
        raise UserError(f"{path}: no 'label {{...}}' or 'item {{...}}' blocks found; not an AVA label map")
    return LabelMap(ids, names, types, source=str(path))


def write_labelmap(path: str | Path, labelmap: LabelMap, layout: str = "label") -> None:
    """Write a label map in the 80-class `label` layout (with label_type) or the 60-class `item` layout."""
    if layout not in ("label", "item"):
        raise ValueError("layout must be 'label' or 'item'")
    out = io.StringIO()
    for cid in labelmap.ids:
        name = labelmap.names[cid].replace("\\", "\\\\").replace('"', '\\"')
        if layout == "label":
            out.write(f'label {{\n  name: "{name}"\n  label_id: {cid}\n')
            if cid in labelmap.types:
                out.write(f"  label_type: {labelmap.types[cid]}\n")
            out.write("}\n")
        else:
            out.write(f'item {{\n  name: "{name}"\n  id: {cid}\n}}\n')
    with atomic_write(path) as handle:
        handle.write(out.getvalue())


def check_action_ids(table: AvaTable, labelmap: LabelMap) -> None:
    """Fail on the first row whose action id is not in `labelmap` (for training data; evaluators ignore them)."""
    known = np.asarray(labelmap.ids, dtype=np.int64)
    bad = np.flatnonzero((table.action_ids >= 0) & ~np.isin(table.action_ids, known))
    if bad.size:
        i = int(bad[0])
        raise UserError(
            f"{table.source}: row {i + 1} ({table.video_ids[i]},{format_timestamp(table.timestamps[i])}) has action_id "
            f"{int(table.action_ids[i])}, not in label map {labelmap.source} ({bad.size} such rows)"
        )


# -------------------------------------------------------------------------------------- exclusions, timing


def read_exclusions(path: str | Path) -> set[tuple[str, float]]:
    """Excluded keyframes: `video_id,timestamp` rows → {(video_id, seconds)}."""
    path = Path(path)
    keys: set[tuple[str, float]] = set()
    for lineno, fields in _data_lines(_open_text(path)):
        if len(fields) != 2:
            raise located(path, lineno, f"expected 2 columns (video_id,timestamp), found {len(fields)}")
        keys.add((fields[0], float(_number(path, lineno, "timestamp", fields[1], float))))
    return keys


def write_exclusions(path: str | Path, keys: Iterable[tuple[str, float]]) -> None:
    with atomic_write(path) as handle:
        for vid, ts in sorted(keys):
            handle.write(f"{vid},{format_timestamp(ts)}\n")


@dataclass(frozen=True)
class VideoTiming:
    """Where keyframes sit in one video file: movie second `t` is frame `(t - time_offset) * fps` of the file."""

    fps: float = 30.0
    time_offset: float = 900.0  # AVA's cut files start at movie second 900
    first_keyframe: float = 902.0
    last_keyframe: float = 1798.0
    keyframe_step: float = 1.0

    def keyframes(self) -> np.ndarray:
        count = int(math.floor((self.last_keyframe - self.first_keyframe) / self.keyframe_step + 1e-9)) + 1
        return self.first_keyframe + self.keyframe_step * np.arange(max(count, 0))

    def frame_index(self, seconds: float | np.ndarray) -> np.ndarray:
        return np.rint((np.asarray(seconds, dtype=np.float64) - self.time_offset) * self.fps).astype(np.int64)


VIDEO_META_COLUMNS = ("video_id", "fps", "time_offset", "first_keyframe", "last_keyframe", "keyframe_step")


def read_video_meta(path: str | Path) -> dict[str, VideoTiming]:
    """Per-video timing CSV with a header `video_id,fps,time_offset,first_keyframe,last_keyframe[,keyframe_step]`."""
    path = Path(path)
    out: dict[str, VideoTiming] = {}
    header: list[str] | None = None
    for lineno, fields in _data_lines(_open_text(path)):
        if header is None:
            header = fields
            missing = [c for c in VIDEO_META_COLUMNS[:5] if c not in header]
            if missing:
                raise located(path, lineno, f"header lacks column(s) {', '.join(missing)}")
            continue
        if len(fields) != len(header):
            raise located(path, lineno, f"expected {len(header)} columns, found {len(fields)}")
        row = dict(zip(header, fields))
        values = {k: float(_number(path, lineno, k, row[k], float)) for k in VIDEO_META_COLUMNS[1:] if k in row}
        if values["fps"] <= 0:
            raise located(path, lineno, f"fps {values['fps']} must be positive")
        out[row["video_id"]] = VideoTiming(**values)
    return out


def write_video_meta(path: str | Path, timings: dict[str, VideoTiming]) -> None:
    with atomic_write(path) as handle:
        handle.write(",".join(VIDEO_META_COLUMNS) + "\n")
        for vid in sorted(timings):
            t = timings[vid]
            handle.write(
                f"{vid},{t.fps:g},{t.time_offset:g},{t.first_keyframe:g},{t.last_keyframe:g},{t.keyframe_step:g}\n"
            )


# ------------------------------------------------------------------------------ proposals, frame lists


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """Stands in for `_codecs.encode` in a pickle: protocols 0-2 (mmcv's default) store every `bytes` object as
    `_codecs.encode(text, 'latin1')`, numpy arrays' raw data included. Only that str -> bytes call is allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "latin_1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r}): only "
                                     "latin1 text -> bytes is allowed")
    return text.encode("latin1")


def _empty_bytes(*args: object) -> bytes:
    """Stands in for `bytes` in a pickle: protocols 0-2 write an empty `bytes` (an array with no rows) as `bytes()`."""
    if args:
        raise pickle.UnpicklingError("refusing builtins.bytes with arguments: only bytes() is allowed")
    return b""


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Even a trusted proposal pickle may only rebuild numpy arrays and builtins: anything else is refused.

    Protocols 3-5 need numpy's own rebuild functions; protocols 0-2 also spell bytes as `_codecs.encode(str,
    'latin1')` (and empty bytes as `bytes()`), which are allowed only through the two narrow stand-ins above.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("collections", "OrderedDict"),
    }
    # protocols 0-2 name the builtins module by its Python 2 name
    _STAND_INS = {("_codecs", "encode"): _latin1_bytes, ("__builtin__", "bytes"): _empty_bytes,
                  ("builtins", "bytes"): _empty_bytes}

    def find_class(self, module: str, name: str) -> type:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        if (module, name) in self._STAND_INS:
            return self._STAND_INS[module, name]  # type: ignore[return-value]
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def read_proposals_pkl(path: str | Path, trust: bool = False) -> AvaTable:
    """mmaction2 proposal pickle `{'vid,0902': float[N, 4 or 5]}` → person boxes (action -1).

    A pickle can run code when loaded, so this needs `trust=True`; even then only numpy arrays are rebuilt.
    """
    path = Path(path)
    if not trust:
        raise UserError(
            f"{path}: is a pickle, which can run code when loaded; set data.target.trust_pickle=true only if you "
            "trust its source (or convert it to a PySlowFast-style box CSV)"
        )
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        with path.open("rb") as handle:
            obj = _ArrayOnlyUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"{path}: not a readable proposal pickle ({exc})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a dict {{'video_id,timestamp': array}}, found {type(obj).__name__}")
    parts: list[AvaTable] = []
    for key, arr in obj.items():
        if not isinstance(key, str) or key.count(",") != 1:
            raise UserError(f"{path}: key {key!r} is not 'video_id,timestamp'")
        vid, ts_text = key.split(",")
        try:
            ts = float(ts_text)
        except ValueError:
            raise UserError(f"{path}: key {key!r} has a non-numeric timestamp") from None
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] not in (4, 5):
            raise UserError(f"{path}: entry {key!r} has shape {arr.shape}, expected (N, 4) or (N, 5)")
        n = arr.shape[0]
        scores = arr[:, 4] if arr.shape[1] == 5 else np.ones(n, np.float32)
        parts.append(AvaTable.from_columns([vid] * n, [ts] * n, arr[:, :4], scores=scores, source=str(path)))
    table = AvaTable.concat(parts) if parts else AvaTable.empty(str(path))
    table.source = str(path)
    return table


def read_frame_list(path: str | Path) -> dict[str, list[str]]:
    """PySlowFast frame list (`original_vido_id video_id frame_id path labels`, space separated) → paths per video."""
    path = Path(path)
    frames: dict[str, dict[int, str]] = {}
    saw_header = False
    for lineno, fields in _data_lines(_open_text(path)):
        if not saw_header and fields and fields[0] == "original_vido_id":
            saw_header = True
            continue
        if len(fields) < 4:
            raise located(
                path, lineno, f"expected 'original_vido_id video_id frame_id path labels', found {len(fields)} fields"
            )
        frame_id = int(_number(path, lineno, "frame_id", fields[2], int))
        frames.setdefault(fields[0], {})[frame_id] = fields[3]
    return {vid: [paths[i] for i in sorted(paths)] for vid, paths in frames.items()}
