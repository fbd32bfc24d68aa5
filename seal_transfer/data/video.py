"""Decode the frames a SlowFast clip needs around a keyframe, from video files (PyAV) or PySlowFast frame folders.

Frame timing always comes from the caller (fps, time offset of frame 0): AVA's 30 fps / 900 s cut is one case
of the general rule, never a constant here. A dataset reads many clips from one video, so a source keeps its
container open between reads, but drops it when pickled and reopens it lazily (and after a fork) so it can be
handed to DataLoader workers.
"""

from __future__ import annotations

import math
import os
import re
import string
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from seal_transfer.errors import UserError
from seal_transfer.utils.fileio import atomic_path

PathLike = Union[str, "os.PathLike[str]"]

# PySlowFast's AVA frame folders: frames/{video_id}/{video_id}_{idx:06d}.jpg with idx starting at 1.
PYSLOWFAST_FRAME_PATTERN = "{video_id}_{idx:06d}.jpg"
PYSLOWFAST_INDEX_BASE = 1


# A stream may stop this many seconds before the frame count its header promises and still count as ending
# normally: container durations are rounded estimates (Matroska has no frame count). A shorter stream is truncated.
END_SLACK_S = 0.5


def end_slack_frames(fps: float) -> int:
    """END_SLACK_S in frames (at least 1)."""
    return max(1, int(math.ceil(END_SLACK_S * fps)))


class VideoError(UserError):
    """A video or frame folder that cannot deliver the requested frames (missing, empty, corrupt, truncated)."""


def _video_error(path: PathLike, problem: str) -> VideoError:
    return VideoError(f"{path}: {problem}")


@dataclass(frozen=True)
class VideoInfo:
    """What a dataset needs to map seconds to frame indices and to size its buffers."""

    fps: float
    num_frames: int
    width: int
    height: int
    duration_s: float


# --------------------------------------------------------------------------------------------------------------
# Frame indices


def clip_frame_indices(
    center_sec: float,
    fps: float,
    time_offset: float,
    num_frames: int,
    sample_rate: int,
    video_frames: Optional[int] = None,
) -> np.ndarray:
    """Source frame indices of a `num_frames`-frame clip, `sample_rate` frames apart, centred on `center_sec`.

    Layout follows PySlowFast's AVA `get_sequence`: the span `num_frames * sample_rate` starts half a span before
    the centre frame, so the centre frame is the clip's frame `num_frames // 2`. `time_offset` is the second at
    which the file's frame 0 sits (AVA cut videos: 900). Indices below 0, or above `video_frames - 1` when the
    video length is given, are clamped so edge frames repeat (PySlowFast does the same).
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if num_frames <= 0 or sample_rate <= 0:
        raise ValueError(f"num_frames and sample_rate must be positive, got {num_frames}, {sample_rate}")
    center = int(round((center_sec - time_offset) * fps))
    start = center - (num_frames * sample_rate) // 2
    indices = start + sample_rate * np.arange(num_frames, dtype=np.int64)
    upper = None if video_frames is None else max(int(video_frames) - 1, 0)
    return np.clip(indices, 0, upper)


def _short_side_size(width: int, height: int, short_side: Optional[int]) -> tuple[int, int]:
    """(width, height) after setting the short side to `short_side`, aspect kept; unchanged when None."""
    if short_side is None:
        return width, height
    if short_side <= 0:
        raise ValueError(f"short_side must be positive, got {short_side}")
    scale = short_side / min(width, height)
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def _as_index_array(indices: Any) -> np.ndarray:
    array = np.asarray(indices, dtype=np.int64).reshape(-1)
    if array.size == 0:
        raise ValueError("read() needs at least one frame index")
    if array.min() < 0:
        raise ValueError(f"frame indices must be >= 0, got {int(array.min())}")
    return array


# --------------------------------------------------------------------------------------------------------------
# Sources


class FrameSource:
    """Common interface of video-file and frame-folder sources: `read(indices) -> uint8 (N, H, W, 3)`."""

    path: Path

    def read(self, indices: np.ndarray, *, short_side: Optional[int] = None) -> np.ndarray:
        raise NotImplementedError

    def read_frames(self, indices: np.ndarray, *, short_side: Optional[int] = None) -> list[np.ndarray]:
        """Like `read`, one (H, W, 3) array per index, not stacked (a clip transform crops each frame itself, so
        full frames are never copied into one block). Duplicate indices may share one array: treat as read-only.
        """
        return list(self.read(indices, short_side=short_side))

    def close(self) -> None:
        """Release open handles; the source reopens on the next read."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_container(path: Path) -> Any:
    """Open with PyAV, turning every failure into a one-line VideoError that names the file."""
    import av

    if not path.exists():
        raise _video_error(path, "video file does not exist")
    if not path.is_file():
        raise _video_error(path, "not a regular file")
    if path.stat().st_size == 0:
        raise _video_error(path, "video file is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise _video_error(path, f"cannot open as a video ({_ffmpeg_reason(exc)})") from exc
    if not container.streams.video:
        container.close()
        raise _video_error(path, "no video stream in the file")
    return container


def _ffmpeg_reason(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "strerror", None) or exc).split())


def _stream_fps(stream: Any) -> Optional[Fraction]:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return None


def probe_video(path: PathLike) -> VideoInfo:
    """fps, frame count, size and duration from the container headers (no decoding)."""
    path = Path(path)
    container = _open_container(path)
    try:
        return _info_from_container(path, container)
    finally:
        container.close()


def _info_from_container(path: Path, container: Any) -> VideoInfo:
    import av

    stream = container.streams.video[0]
    fps = _stream_fps(stream)
    if fps is None:
        raise _video_error(path, "video stream has no frame rate")
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    num_frames = int(stream.frames) if stream.frames and stream.frames > 0 else int(round(duration * float(fps)))
    return VideoInfo(
        fps=float(fps),
        num_frames=num_frames,
        width=int(stream.codec_context.width),
        height=int(stream.codec_context.height),
        duration_s=duration,
    )


class VideoSource(FrameSource):
    """Frames of one video file by index, with one seek per read and forward decoding only as far as needed.

    `threads`: decoder threads per source (None: PyAV's default). With several DataLoader workers on a small
    machine keep it at 1; one process decoding alone can use 0 (= FFmpeg picks).
    """

    # Colour conversion with scaling (`short_side` smaller than the video) uses this swscale filter: AREA shrinks
    # without aliasing and is cheaper than PyAV's default BILINEAR (measured 2.5 vs 3.8 ms for 720p -> 320 px).
    # Without scaling, FFmpeg's unscaled YUV->RGB path is cheaper still (about 0.6 ms for a 720p frame).
    SCALE_INTERPOLATION = "AREA"

    # A read that starts at most this many frames after where the previous read stopped keeps decoding forward
    # from there instead of seeking: consecutive keyframes of one video (with a frame cache in front, see
    # datasets.KeyframeDataset) then cost one decode of each frame instead of a seek + re-decode per clip.
    FORWARD_GAP = 96

    # `last_decodable_frame` trusts an index once packets this many frames past it exist; nearer the stream's end
    # it decodes to find out (the last few packets of a cut file may not decode).
    PROBE_LOOKAHEAD = 16

    def __init__(self, path: PathLike, *, threads: Optional[int] = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self._container: Any = None
        self._owner_pid: Optional[int] = None
        self._info: Optional[VideoInfo] = None
        self._decoder: Any = None  # live frame iterator of the last read, positioned after `_resume_index`
        self._resume_index: Optional[int] = None  # index of the last frame that iterator yielded
        # One swscale context for every frame of this source: `VideoFrame.to_ndarray(format=...)` builds a fresh
        # one per frame, which cost 1.75 ms of a 144x108 frame's 1.8 ms conversion (0.05 ms reused; same pixels).
        self._reformatter: Any = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_container"] = None  # FFmpeg handles neither pickle nor survive a fork safely
        state["_owner_pid"] = None
        state["_decoder"] = None
        state["_resume_index"] = None
        state["_reformatter"] = None
        return state

    def close(self) -> None:
        if self._container is not None and self._owner_pid == os.getpid():
            self._container.close()
        self._container = None
        self._owner_pid = None
        self._decoder = None
        self._resume_index = None

    def _stream(self) -> Any:
        if self._container is None or self._owner_pid != os.getpid():
            self._container = _open_container(self.path)
            self._owner_pid = os.getpid()
            self._decoder = None
            self._resume_index = None
            self._reformatter = None
            stream = self._container.streams.video[0]
            if self.threads is not None:
                stream.thread_type = "AUTO"
                stream.thread_count = self.threads
        return self._container.streams.video[0]

    @property
    def info(self) -> VideoInfo:
        if self._info is None:
            self._stream()
            self._info = _info_from_container(self.path, self._container)
        return self._info

    # -- probing ------------------------------------------------------------------------------------------------
    def last_decodable_frame(self, index: int) -> int:
        """`index` if the stream delivers frames up to `index`, else the last frame it does deliver (a truncated
        file: its header still promises the full count).

        Cheap on an intact file: one seek, then packets are only demuxed (not decoded) up to `index`. Only when
        the packets stop early is the end searched (seeks) and the last frame decoded to find which one really
        decodes. Raises VideoError when no frame decodes at all.
        """
        stream = self._stream()
        fps = _stream_fps(stream)
        if fps is None:
            raise _video_error(self.path, "video stream has no frame rate")
        index = max(int(index), 0)
        try:
            # Packets a little beyond `index` mean every frame up to it is complete (B-frames included).
            reached = self._demux_reach(stream, fps, index + self.PROBE_LOOKAHEAD)
            if reached is not None and reached >= index + self.PROBE_LOOKAHEAD:
                return index
            if reached is None:  # nothing after that seek point (e.g. an mp4 whose index points past the end)
                low, high = 0, index
                while high - low > 1:
                    mid = (low + high) // 2
                    probe = self._demux_reach(stream, fps, mid)
                    low, high = (mid, high) if probe is not None and probe >= mid else (low, mid)
                reached = self._demux_reach(stream, fps, low, to_end=True)
                if reached is None:
                    raise _video_error(self.path, "no frame can be decoded (no video packets)")
            _, _, last_index, last_frame = self._decode_range(stream, fps, np.array([reached]))
        finally:
            self._decoder = None  # probing moved the demuxer: the next read seeks afresh
            self._resume_index = None
        if last_frame is None or last_index is None:
            raise _video_error(self.path, f"no frame can be decoded at or before frame {reached}")
        return min(int(last_index), index)

    def _demux_reach(self, stream: Any, fps: Fraction, index: int, to_end: bool = False) -> Optional[int]:
        """Seek to the keyframe at or before `index` and read packets (no decoding) until one reaches `index`
        (or, with `to_end`, to the end); returns the highest frame index seen, None if no packet came."""
        import av

        time_base = stream.time_base
        start_pts = stream.start_time or 0
        target_sec = max(Fraction(0), (Fraction(index) - Fraction(1, 2)) / fps)
        highest: Optional[int] = None
        try:
            self._container.seek(start_pts + int(target_sec / time_base), stream=stream, backward=True)
            for packet in self._container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                frame = int(round((packet.pts - start_pts) * time_base * fps))
                highest = frame if highest is None else max(highest, frame)
                if highest >= index and not to_end:
                    break
        except (av.FFmpegError, EOFError):
            pass  # a truncated tail: what was read so far is the answer
        return highest

    # -- decoding ----------------------------------------------------------------------------------------------
    def read(self, indices: np.ndarray, *, short_side: Optional[int] = None) -> np.ndarray:
        """Frames at `indices` (any order, duplicates allowed) as uint8 (N, H, W, 3) RGB.

        Indices past the end of the video repeat its last frame. A frame the header promises but the stream does
        not deliver (a truncated file) is an error, and so is a frame missing inside the decoded range.
        """
        return np.stack(self.read_frames(indices, short_side=short_side))

    def read_frames(self, indices: np.ndarray, *, short_side: Optional[int] = None) -> list[np.ndarray]:
        """`read` without stacking: one uint8 (H, W, 3) RGB array per index (duplicates share one array).

        Only the wanted frames are converted to RGB (frames decoded on the way are dropped as YUV), each once.
        """
        wanted = _as_index_array(indices)
        stream = self._stream()
        fps = _stream_fps(stream)
        if fps is None:
            raise _video_error(self.path, "video stream has no frame rate")
        width, height = _short_side_size(stream.codec_context.width, stream.codec_context.height, short_side)
        unique = np.unique(wanted)
        collected, first_index, last_index, last_frame = self._decode_range(stream, fps, unique)
        if first_index is not None and first_index > unique[0]:
            # The seek landed after the first wanted frame (inexact container index): decode from the start.
            collected, first_index, last_index, last_frame = self._decode_range(stream, fps, unique, from_start=True)
        return self._convert(wanted, unique, collected, last_index, last_frame, width, height)

    def _decode_range(
        self, stream: Any, fps: Fraction, unique: np.ndarray, from_start: bool = False
    ) -> tuple[dict[int, Any], Optional[int], Optional[int], Any]:
        """Seek to the keyframe at or before the first wanted frame; decode until the last one (or the end)."""
        import av

        time_base = stream.time_base
        start_pts = stream.start_time or 0
        first, last = int(unique[0]), int(unique[-1])
        wanted_set = set(unique.tolist())
        # Aim half a frame early so rounding never puts the target just after the frame we need.
        target_sec = Fraction(0) if from_start else max(Fraction(0), (Fraction(first) - Fraction(1, 2)) / fps)
        target_pts = start_pts + int(target_sec / time_base)
        collected: dict[int, Any] = {}
        first_index: Optional[int] = None
        last_index: Optional[int] = None
        last_frame: Any = None
        resume = self._resume_index
        continuing = (
            not from_start and self._decoder is not None and resume is not None
            and resume < first <= resume + self.FORWARD_GAP
        )
        try:
            if continuing:
                last_index = resume  # frames without pts keep counting from where the last read stopped
            else:
                self._decoder = None
                self._container.seek(target_pts, stream=stream, backward=True, any_frame=False)
                self._decoder = self._container.decode(stream)
            self._resume_index = None  # only a read that completes may be continued
            for frame in self._decoder:
                if frame.pts is None:
                    index = (last_index + 1) if last_index is not None else 0
                else:
                    index = int(round((frame.pts - start_pts) * time_base * fps))
                if first_index is None:
                    first_index = index
                last_index, last_frame = index, frame
                if index in wanted_set:
                    collected[index] = frame
                if index >= last:
                    self._resume_index = index
                    break
            else:
                self._decoder = None  # end of stream: the next read seeks again
        except (av.FFmpegError, EOFError) as exc:
            self._decoder = None
            # A truncated/corrupt tail: keep what decoded; _convert decides whether that is enough.
            if last_frame is None:
                raise _video_error(self.path, f"cannot decode frames ({_ffmpeg_reason(exc)})") from exc
        return collected, first_index, last_index, last_frame

    def _convert(
        self,
        wanted: np.ndarray,
        unique: np.ndarray,
        collected: dict[int, Any],
        last_index: Optional[int],
        last_frame: Any,
        width: int,
        height: int,
    ) -> np.ndarray:
        if last_frame is None:
            raise _video_error(self.path, f"no frame could be decoded at or after frame {int(unique[0])}")
        source_of: dict[int, Any] = {}
        for index in unique.tolist():
            if index in collected:
                source_of[index] = collected[index]
            elif last_index is not None and index > last_index:
                promised = self.info.num_frames
                if last_index < promised - 1 - end_slack_frames(self.info.fps):
                    # The stream stops well before the end its header promises: a truncated file. Repeating the
                    # last frame here would feed a frozen picture as if it were the video.
                    raise _video_error(
                        self.path,
                        f"frame {index} cannot be decoded: the stream ends at frame {last_index} although the "
                        f"header promises {promised} frames (truncated file?)",
                    )
                source_of[index] = last_frame  # past the real end: repeat the last frame (PySlowFast's clamp)
            else:
                raise _video_error(self.path, f"frame {index} is missing from the decoded stream")
        arrays: dict[int, np.ndarray] = {}
        converted: dict[int, np.ndarray] = {}  # by id(frame): the end frame may stand in for many indices
        for index, frame in source_of.items():
            key = id(frame)
            if key not in converted:
                converted[key] = self._to_rgb(frame, width, height)
            arrays[index] = converted[key]
        return [arrays[index] for index in wanted.tolist()]

    def _to_rgb(self, frame: Any, width: int, height: int) -> np.ndarray:
        if self._reformatter is None:
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()
        if (frame.width, frame.height) == (width, height):
            rgb = self._reformatter.reformat(frame, format="rgb24")  # FFmpeg's unscaled (SIMD) colour conversion
        else:
            rgb = self._reformatter.reformat(frame, format="rgb24", width=width, height=height,
                                             interpolation=self.SCALE_INTERPOLATION)
        return rgb.to_ndarray()


class FrameFolderSource(FrameSource):
    """A PySlowFast-style folder of one jpg per frame, read through the same interface as a video file.

    File name of frame index i (0-based): `pattern.format(video_id=video_id, idx=i + index_base)`. The folder is
    listed once: its length is set by the highest-numbered file, so a missing file in the middle is a gap that
    `missing_frames` reports (and reading it is an error), never the end of the video.
    """

    def __init__(
        self,
        directory: PathLike,
        *,
        video_id: Optional[str] = None,
        pattern: str = PYSLOWFAST_FRAME_PATTERN,
        index_base: int = PYSLOWFAST_INDEX_BASE,
        fps: Optional[float] = None,
    ) -> None:
        self.path = Path(directory)
        self.video_id = video_id if video_id is not None else self.path.name
        self.pattern = pattern
        self.index_base = index_base
        self.fps = fps
        self._present: Optional[np.ndarray] = None

    def frame_path(self, index: int) -> Path:
        return self.path / self.pattern.format(video_id=self.video_id, idx=index + self.index_base)

    def _frame_indices(self) -> np.ndarray:
        """0-based indices of the frame files present (listed once, then cached), sorted."""
        if self._present is None:
            if not self.path.is_dir():
                raise _video_error(self.path, "frame folder does not exist")
            regex = _pattern_regex(self.pattern, self.video_id)
            found = []
            for name in os.listdir(self.path):
                match = regex.fullmatch(name)
                if match is None:
                    continue
                index = int(match.group(1)) - self.index_base
                if index >= 0 and self.frame_path(index).name == name:  # same zero padding as the pattern
                    found.append(index)
            self._present = np.unique(np.asarray(found, dtype=np.int64))
        return self._present

    @property
    def num_frames(self) -> int:
        """Frames 0 .. the highest-numbered file present; any missing in between are `missing_frames`."""
        present = self._frame_indices()
        return int(present[-1]) + 1 if present.size else 0

    @property
    def missing_frames(self) -> np.ndarray:
        """Indices below `num_frames` without a file (a gap left by an interrupted extraction or a deleted file)."""
        present = self._frame_indices()
        if not present.size:
            return present
        return np.setdiff1d(np.arange(int(present[-1]) + 1, dtype=np.int64), present, assume_unique=True)

    def read(self, indices: np.ndarray, *, short_side: Optional[int] = None) -> np.ndarray:
        """Frames at `indices` as uint8 (N, H, W, 3); indices past the last frame repeat it, a missing file
        inside the folder is an error naming it."""
        wanted = _as_index_array(indices)
        total = self.num_frames
        if total == 0:
            raise _video_error(self.path, f"no frames named like {self.frame_path(0).name} (pattern {self.pattern!r})")
        wanted = np.minimum(wanted, total - 1)
        unique, inverse = np.unique(wanted, return_inverse=True)
        images = _decode_jpegs([self.frame_path(int(i)) for i in unique])
        height, width = images.shape[-2:]
        new_w, new_h = _short_side_size(width, height, short_side)
        if (new_w, new_h) != (width, height):  # torch resizes uint8 directly (antialiased, like a decoder's scaler)
            images = F.interpolate(images, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        return images.permute(0, 2, 3, 1).numpy()[inverse.reshape(-1)]


def _pattern_regex(pattern: str, video_id: str) -> re.Pattern[str]:
    """A regex matching the file names `pattern` produces for `video_id`, capturing the frame number."""
    parts = []
    for literal, field, _spec, _conv in string.Formatter().parse(pattern):
        parts.append(re.escape(literal))
        if field == "video_id":
            parts.append(re.escape(video_id))
        elif field == "idx":
            parts.append(r"(\d+)")
        elif field is not None:
            raise ValueError(f"frame pattern {pattern!r}: unknown field {{{field}}} (use {{video_id}} and {{idx}})")
    if "{idx" not in pattern:
        raise ValueError(f"frame pattern {pattern!r} has no {{idx}} field")
    return re.compile("".join(parts))


def _decode_jpegs(paths: list[Path]) -> torch.Tensor:
    """Decode jpgs to uint8 (N, 3, H, W) with torchvision (PIL when torchvision's image ops are unavailable)."""
    for path in paths:
        if not path.is_file():
            raise _video_error(path, "frame image is missing")
    try:
        from torchvision.io import ImageReadMode, decode_jpeg, read_file
    except (ImportError, RuntimeError):  # a torchvision without its C++ image ops
        return _decode_with_pil(paths)
    images = []
    for path in paths:
        try:
            images.append(decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB))
        except RuntimeError as exc:
            raise _video_error(path, f"cannot decode jpg ({' '.join(str(exc).split())[:200]})") from exc
    return _stack_same_size(paths, images)


def _decode_with_pil(paths: list[Path]) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1))
        except (OSError, UnidentifiedImageError) as exc:
            raise _video_error(path, f"cannot decode image ({exc})") from exc
    return _stack_same_size(paths, images)


def _stack_same_size(paths: list[Path], images: list[torch.Tensor]) -> torch.Tensor:
    size = images[0].shape
    for path, image in zip(paths, images):
        if image.shape != size:
            raise _video_error(path, f"frame size {tuple(image.shape[1:])} differs from {tuple(size[1:])}")
    return torch.stack(images)


@dataclass(frozen=True)
class FrameCheck:
    """What one probe of a video established: which frames can be asked for, and whether it ends early."""

    num_frames: int  # frames 0 .. num_frames - 1 exist (clip indices clamp to this end)
    promised_frames: int  # what the header (or the annotation, when it promises more) says the video holds
    promised_by: str  # where that promise comes from, for messages
    missing: np.ndarray  # indices below num_frames without data (frame-folder gaps), sorted
    truncated: bool  # the video ends more than END_SLACK_S before the promised end


def check_frames(
    source: FrameSource, up_to: int, fps: float, promised: Optional[int] = None, promised_by: str = "the annotation"
) -> FrameCheck:
    """Probe `source` for the frames a dataset needs (indices up to `up_to`), cheaply enough to run per video
    before training: a video file is checked with one seek and a demux up to that frame (the header's frame
    count survives truncation, so it cannot be trusted alone); a frame folder is listed once (gaps and end).

    `promised`: a frame count the annotation claims (SEAL Tubes' `nframes`); a video shorter than the larger
    of that and its header's count by more than END_SLACK_S is `truncated`.
    """
    if isinstance(source, FrameFolderSource):
        count = source.num_frames
        if count == 0:
            raise _video_error(
                source.path, f"no frames named like {source.frame_path(0).name} (pattern {source.pattern!r})"
            )
        expected = max(count, int(promised or 0))
        return FrameCheck(count, expected, promised_by, source.missing_frames, expected - count > end_slack_frames(fps))
    if not isinstance(source, VideoSource):
        raise TypeError(f"check_frames needs a VideoSource or FrameFolderSource, got {type(source).__name__}")
    header = source.info.num_frames
    expected = max(header, int(promised or 0))
    by = promised_by if promised is not None and int(promised) > header else "its header"
    target = max(min(int(up_to), expected - 1), 0)
    last = source.last_decodable_frame(target)
    if last >= target:
        return FrameCheck(max(header, target + 1), expected, by, np.zeros(0, np.int64), False)
    count = last + 1
    return FrameCheck(count, expected, by, np.zeros(0, np.int64), expected - count > end_slack_frames(fps))


def open_video_source(
    path_or_dir: PathLike,
    *,
    threads: Optional[int] = None,
    video_id: Optional[str] = None,
    pattern: str = PYSLOWFAST_FRAME_PATTERN,
    index_base: int = PYSLOWFAST_INDEX_BASE,
    fps: Optional[float] = None,
) -> FrameSource:
    """A `VideoSource` for a file, a `FrameFolderSource` for a directory (folder options apply only there)."""
    path = Path(path_or_dir)
    if path.is_dir():
        return FrameFolderSource(path, video_id=video_id, pattern=pattern, index_base=index_base, fps=fps)
    if not path.exists():
        raise _video_error(path, "video file or frame folder does not exist")
    return VideoSource(path, threads=threads)


# --------------------------------------------------------------------------------------------------------------
# Writing


def _encoder_available(codec: str) -> bool:
    import av

    try:
        av.codec.Codec(codec, "w")
    except (av.FFmpegError, ValueError):  # UnknownCodecError is a ValueError
        return False
    return True


_FF_QP2LAMBDA = 118  # FFmpeg's scale between a quantiser and `global_quality`


def write_video(
    path: PathLike,
    frames: np.ndarray,
    fps: float,
    codec: str = "libx264",
    crf: int = 18,
    pix_fmt: str = "yuv420p",
    gop_size: Optional[int] = None,
) -> str:
    """Encode uint8 (N, H, W, 3) RGB frames atomically; the container comes from the suffix (.mp4/.mkv/.webm).

    Falls back to the `mpeg4` encoder when `codec` is not in this FFmpeg build; returns the codec used.
    `crf` is the quality of libx264/libx265/libvpx (lower is better); other encoders get a fixed near-lossless
    quantiser instead.
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise ValueError(f"write_video wants non-empty uint8 (N, H, W, 3) frames, got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if pix_fmt.startswith("yuv420") and (height % 2 or width % 2):
        raise ValueError(f"{pix_fmt} needs even width and height, got {width}x{height}")
    if not _encoder_available(codec):
        codec = "mpeg4"
    rate = Fraction(fps).limit_denominator(1_000_000) if not math.isclose(fps, round(fps)) else Fraction(round(fps))
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            if gop_size is not None:  # keyframe spacing: short GOPs make seeking cheap (and testable)
                stream.codec_context.gop_size = gop_size
            if codec in ("libx264", "libx265"):
                stream.options = {"crf": str(crf)}
            elif codec.startswith("libvpx"):
                stream.options = {"crf": str(crf), "b": "0"}  # b=0: constant quality instead of a bitrate cap
            else:  # mpeg4/mjpeg-style encoders: fixed quantiser 2 (near-lossless), like `ffmpeg -q:v 2`
                stream.codec_context.qscale = True
                stream.codec_context.global_quality = 2 * _FF_QP2LAMBDA
            for frame_array in frames:
                frame = av.VideoFrame.from_ndarray(frame_array, format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    return codec


@dataclass
class TimedVideo:
    """An opened video (file or frame folder) with its frame rate, size and the movie second of its frame 0."""

    source: Any
    fps: float
    num_frames: int
    width: int
    height: int
    time_offset: float
    timing_note: str  # where time_offset came from, for messages


def open_timed_video(video: Path, video_id: str, *, fps: Optional[float] = None,
                     time_offset: Optional[float] = None, annotations: Optional[Path] = None) -> TimedVideo:
    """Open `video` for display: a frame folder takes `fps` (default 30), a file its own rate; the time offset is
    `time_offset`, else the folder's `annotations/video_meta.csv` entry, else 0 (a plain video)."""
    from seal_transfer.data.formats.ava import read_video_meta

    source = open_video_source(video, video_id=video_id)
    if isinstance(source, FrameFolderSource):
        rate, num_frames = float(fps or 30.0), source.num_frames
        if num_frames == 0:
            raise UserError(f"{video}: no frames named like {source.frame_path(0).name}")
        width, height = source.read(np.array([0])).shape[2:0:-1]
    else:
        info = source.info
        rate, num_frames, width, height = info.fps, info.num_frames, info.width, info.height
        if fps is not None:
            raise UserError("--fps applies to frame folders only; a video file carries its own frame rate")
    note = "--time-offset"
    if time_offset is None:
        meta_path = annotations / "video_meta.csv" if annotations else None
        meta = read_video_meta(meta_path) if meta_path is not None and meta_path.is_file() else {}
        if video_id in meta:
            time_offset, note = meta[video_id].time_offset, f"{meta_path}"
        else:
            time_offset, note = 0.0, "default (plain video)"
    return TimedVideo(source, float(rate), int(num_frames), int(width), int(height), float(time_offset), note)

