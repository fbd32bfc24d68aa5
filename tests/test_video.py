"""Video decoding: frame indices, file and frame-folder sources, error messages, writer, SlowFast pathways."""

from __future__ import annotations

import pickle
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from seal_transfer.data.clip import pack_pathways
from seal_transfer.data.video import (
    FrameFolderSource,
    VideoError,
    VideoSource,
    check_frames,
    clip_frame_indices,
    open_video_source,
    probe_video,
    write_video,
)
from seal_transfer.errors import UserError

BITS = 8
BAR_WIDTH = 16


def coded_frames(count: int, height: int = 32) -> np.ndarray:
    """Frames whose index is written as 8 black/white bars (bit b set -> bar b white): survives lossy codecs."""
    index_bits = (np.arange(count)[:, None] >> np.arange(BITS)[None, :]) & 1  # (N, BITS)
    bars = np.repeat(index_bits * 255, BAR_WIDTH, axis=1).astype(np.uint8)  # (N, W)
    return np.repeat(np.repeat(bars[:, None, :, None], height, axis=1), 3, axis=3)


def decode_indices(frames: np.ndarray) -> np.ndarray:
    """Read the bar code back (centre half of each bar, so resizing and ringing do not matter)."""
    count, height, width = frames.shape[:3]
    bar = width // BITS
    centres = frames.reshape(count, height, BITS, bar, 3)[:, :, :, bar // 4 : 3 * bar // 4]
    bits = centres.mean(axis=(1, 3, 4)) > 128
    return (bits * (1 << np.arange(BITS))).sum(axis=1)


def write_with_pts(path: Path, frames: np.ndarray, pts: list[int], rate: int) -> None:
    """An mkv whose timestamps are given explicitly (offset start, gaps), which write_video never produces."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, rate)
        for array, stamp in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = stamp, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.fixture(scope="module")
def coded_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "coded.mp4"
    write_video(path, coded_frames(120), fps=30000 / 1001, gop_size=10)
    return path


# -- clip_frame_indices -----------------------------------------------------------------------------------------


def test_clip_indices_ava_timing() -> None:
    # AVA: 30 fps, video cut at 900 s; keyframe 902 s is frame 60, the clip's frame T//2.
    indices = clip_frame_indices(902, fps=30, time_offset=900, num_frames=8, sample_rate=8)
    assert indices.tolist() == [28, 36, 44, 52, 60, 68, 76, 84]
    assert indices.dtype.kind == "i"


def test_clip_indices_other_fps_and_offset() -> None:
    indices = clip_frame_indices(3.0, fps=25, time_offset=0, num_frames=4, sample_rate=2)
    assert indices.tolist() == [71, 73, 75, 77]


def test_clip_indices_clamped_at_both_ends() -> None:
    start = clip_frame_indices(900.2, fps=30, time_offset=900, num_frames=4, sample_rate=4)
    assert start.tolist() == [0, 2, 6, 10]  # centre 6: raw [-2, 2, 6, 10], clamped below only
    end = clip_frame_indices(10.0, fps=10, time_offset=0, num_frames=4, sample_rate=2, video_frames=101)
    assert end.tolist() == [96, 98, 100, 100]


def test_clip_indices_reject_bad_arguments() -> None:
    with pytest.raises(ValueError):
        clip_frame_indices(1.0, fps=0, time_offset=0, num_frames=4, sample_rate=2)


# -- video files ----------------------------------------------------------------------------------------------


def test_probe_video(coded_mp4: Path) -> None:
    info = probe_video(coded_mp4)
    assert info.fps == pytest.approx(29.97, abs=1e-2)
    assert info.num_frames == 120
    assert (info.width, info.height) == (BITS * BAR_WIDTH, 32)
    assert info.duration_s == pytest.approx(120 / info.fps, abs=0.05)


def test_written_video_round_trips_every_frame(coded_mp4: Path) -> None:
    frames = VideoSource(coded_mp4).read(np.arange(120))
    assert frames.dtype == np.uint8 and frames.shape == (120, 32, BITS * BAR_WIDTH, 3)
    assert decode_indices(frames).tolist() == list(range(120))


def test_read_arbitrary_order_duplicates_and_past_end(coded_mp4: Path) -> None:
    source = VideoSource(coded_mp4)
    rng = np.random.default_rng(0)
    requests = [np.array([5, 5, 0, 119, 150, 60, 61, 3])] + [rng.integers(0, 130, size=6) for _ in range(8)]
    for indices in requests:  # one source, many reads: each read seeks afresh
        assert decode_indices(source.read(indices)).tolist() == np.minimum(indices, 119).tolist()


def test_read_resizes_short_side_during_decode(coded_mp4: Path) -> None:
    frames = VideoSource(coded_mp4).read(np.array([7, 100]), short_side=16)
    assert frames.shape == (2, 16, 64, 3)
    assert decode_indices(frames).tolist() == [7, 100]


def test_stream_with_offset_start_pts(tmp_path: Path) -> None:
    path = tmp_path / "offset.mkv"
    write_with_pts(path, coded_frames(40), pts=list(range(100, 140)), rate=25)
    source = VideoSource(path)
    assert decode_indices(source.read(np.array([0, 1, 39, 20]))).tolist() == [0, 1, 39, 20]


def test_frame_missing_inside_stream_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "gap.mkv"
    write_with_pts(path, coded_frames(20), pts=list(range(10)) + list(range(15, 25)), rate=25)
    source = VideoSource(path)
    assert decode_indices(source.read(np.array([9, 15]))).tolist() == [9, 10]  # frame 15 holds image 10
    with pytest.raises(VideoError, match=r"gap\.mkv: frame 11 is missing"):
        source.read(np.array([11, 12]))


def test_source_is_picklable_and_reopens(coded_mp4: Path) -> None:
    source = VideoSource(coded_mp4)
    source.read(np.array([1]))  # container now open
    clone = pickle.loads(pickle.dumps(source))
    assert decode_indices(clone.read(np.array([42]))).tolist() == [42]
    source.close()
    assert decode_indices(source.read(np.array([43]))).tolist() == [43]


def test_truncated_file_is_an_error_not_a_frozen_frame(tmp_path: Path) -> None:
    full = tmp_path / "full.mkv"  # Matroska stays playable when cut short (mp4 keeps its index at the end)
    write_video(full, coded_frames(200), fps=25, gop_size=10)
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    assert probe_video(cut).num_frames == 200  # the header still promises every frame
    source = VideoSource(cut)
    last = source.last_decodable_frame(199)
    assert 10 < last < 150
    assert decode_indices(source.read(np.array([0, 10, last]))).tolist() == [0, 10, last]
    with pytest.raises(VideoError, match=rf"cut\.mkv: frame 199 cannot be decoded: the stream ends at frame {last} "
                                         r"although the header promises 200 frames"):
        source.read(np.array([0, 199]))
    check = check_frames(source, 199, fps=25)
    assert check.truncated and check.num_frames == last + 1 and check.promised_frames == 200


def test_past_the_real_end_still_repeats_the_last_frame(coded_mp4: Path) -> None:
    source = VideoSource(coded_mp4)
    assert source.last_decodable_frame(500) == 119
    assert decode_indices(source.read(np.array([118, 119, 140]))).tolist() == [118, 119, 119]
    check = check_frames(source, 500, fps=30)
    assert (check.num_frames, check.truncated) == (120, False)


def test_check_frames_finds_the_end_of_a_cut_faststart_mp4(tmp_path: Path) -> None:
    # An mp4 with its index in front (movflags=faststart) still opens when cut; the index then points past the
    # end of the file, so a seek to a late frame finds no data at all.
    path = tmp_path / "fast.mp4"
    frames = coded_frames(150)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.gop_size = 10
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    source = VideoSource(path)
    assert probe_video(path).num_frames == 150
    check = check_frames(source, 140, fps=25)
    assert check.truncated and 10 < check.num_frames < 140
    assert decode_indices(source.read(np.array([check.num_frames - 1]))).tolist() == [check.num_frames - 1]
    intact = check_frames(source, 20, fps=25)  # only what is needed is probed
    assert (intact.num_frames, intact.truncated) == (150, False)


def test_check_frames_uses_the_annotations_frame_count(coded_mp4: Path) -> None:
    check = check_frames(VideoSource(coded_mp4), 400, fps=30, promised=400, promised_by="nframes in tubes.json")
    assert check.truncated and check.num_frames == 120
    assert (check.promised_frames, check.promised_by) == (400, "nframes in tubes.json")
    # Within END_SLACK_S of the promised end it is the normal end of a video, not a truncation.
    assert not check_frames(VideoSource(coded_mp4), 400, fps=30, promised=125).truncated


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("missing.mp4", None, "does not exist"),
        ("empty.mp4", b"", "empty"),
        ("garbage.mp4", b"this is not a video at all" * 100, "cannot open"),
    ],
)
def test_bad_files_raise_video_error_naming_file(
    tmp_path: Path, name: str, content: bytes | None, problem: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoError, match=problem) as info:
        VideoSource(path).read(np.array([0]))
    assert name in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, UserError)
    if content is not None:
        with pytest.raises(VideoError, match=name):
            probe_video(path)


def test_truncated_mp4_raises_video_error(coded_mp4: Path, tmp_path: Path) -> None:
    data = coded_mp4.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"cut\.mp4"):
        VideoSource(cut).read(np.array([0, 1]))


def test_write_video_is_atomic_and_reports_codec(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "clip.mp4"
    codec = write_video(target, coded_frames(4), fps=25)
    assert codec in ("libx264", "mpeg4")
    assert [p.name for p in target.parent.iterdir()] == ["clip.mp4"]
    assert write_video(tmp_path / "fallback.mp4", coded_frames(4), fps=25, codec="no-such-codec") == "mpeg4"
    assert decode_indices(VideoSource(tmp_path / "fallback.mp4").read(np.arange(4))).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 31, 32, 3), np.uint8), fps=25)


# -- frame folders --------------------------------------------------------------------------------------------


def write_frame_folder(root: Path, video_id: str, frames: np.ndarray, pattern: str, base: int) -> Path:
    from torchvision.io import write_jpeg

    folder = root / video_id
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        name = pattern.format(video_id=video_id, idx=index + base)
        write_jpeg(torch.from_numpy(frame).permute(2, 0, 1).contiguous(), str(folder / name), quality=95)
    return folder


def test_frame_folder_pyslowfast_layout(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path, "vid_A", coded_frames(12), "{video_id}_{idx:06d}.jpg", base=1)
    assert (folder / "vid_A_000001.jpg").is_file()
    source = open_video_source(folder)
    assert isinstance(source, FrameFolderSource) and source.num_frames == 12
    indices = np.array([3, 3, 0, 11, 40])
    assert decode_indices(source.read(indices)).tolist() == [3, 3, 0, 11, 11]
    small = source.read(np.array([5]), short_side=16)
    assert small.shape == (1, 16, 64, 3) and decode_indices(small).tolist() == [5]


def test_frame_folder_custom_pattern_and_base(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path, "clip", coded_frames(5), "img_{idx:05d}.jpg", base=0)
    source = open_video_source(folder, pattern="img_{idx:05d}.jpg", index_base=0)
    assert decode_indices(source.read(np.array([4, 0]))).tolist() == [4, 0]


def test_frame_folder_errors(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path, "vid", coded_frames(6), "{video_id}_{idx:06d}.jpg", base=1)
    with pytest.raises(VideoError, match="no frames named like"):
        FrameFolderSource(folder, pattern="other_{idx}.jpg").read(np.array([0]))
    (folder / "vid_000003.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(VideoError, match=r"vid_000003\.jpg: cannot decode"):
        FrameFolderSource(folder).read(np.array([1, 2]))
    (folder / "vid_000003.jpg").unlink()  # a gap: the folder still ends at its last file
    gapped = FrameFolderSource(folder)
    assert gapped.num_frames == 6 and gapped.missing_frames.tolist() == [2]
    assert decode_indices(gapped.read(np.array([5, 1]))).tolist() == [5, 1]
    with pytest.raises(VideoError, match=r"vid_000003\.jpg: frame image is missing"):
        gapped.read(np.array([1, 2]))
    check = check_frames(gapped, 5, fps=30)
    assert check.num_frames == 6 and check.missing.tolist() == [2] and not check.truncated
    (folder / "notes.txt").write_text("not a frame")  # other files and other paddings are not frames
    (folder / "vid_07.jpg").write_bytes(b"")
    assert FrameFolderSource(folder).num_frames == 6
    with pytest.raises(VideoError, match="frame folder does not exist"):
        FrameFolderSource(tmp_path / "gone").missing_frames.tolist()
    with pytest.raises(VideoError, match="does not exist"):
        open_video_source(tmp_path / "nowhere")


def test_open_video_source_picks_file_reader(coded_mp4: Path) -> None:
    assert isinstance(open_video_source(coded_mp4), VideoSource)


# -- SlowFast pathways ----------------------------------------------------------------------------------------


def test_pack_pathways_matches_pyslowfast_linspace() -> None:
    clip = torch.arange(32, dtype=torch.float32).view(1, 32, 1, 1).expand(3, 32, 2, 2)
    slow, fast = pack_pathways(clip, alpha=4)
    assert fast is clip
    assert slow.shape == (3, 8, 2, 2)
    expected = torch.linspace(0, 31, 8).long().float()
    assert torch.equal(slow[0, :, 0, 0], expected)
    assert slow[0, 0, 0, 0] == 0 and slow[0, -1, 0, 0] == 31
    with pytest.raises(ValueError):
        pack_pathways(clip[:, :3], alpha=4)


def test_read_frames_returns_the_frames_of_read_unstacked(coded_mp4: Path) -> None:
    indices = np.array([9, 3, 3, 50, 130])
    frames = VideoSource(coded_mp4).read_frames(indices)
    assert isinstance(frames, list) and len(frames) == len(indices)
    np.testing.assert_array_equal(np.stack(frames), VideoSource(coded_mp4).read(indices))
    assert decode_indices(np.stack(frames)).tolist() == [9, 3, 3, 50, 119]
    small = VideoSource(coded_mp4).read_frames(np.array([7]), short_side=16)
    assert small[0].shape == (16, 64, 3) and decode_indices(small[0][None]).tolist() == [7]


@pytest.mark.parametrize("short_side", [None, 16])
def test_one_conversion_context_gives_pyav_s_own_pixels(coded_mp4: Path, short_side) -> None:
    """The source reuses one swscale context for all its frames; the pixels must be those of PyAV's per-frame
    `to_ndarray` (a fresh context each call), scaled or not."""
    with av.open(str(coded_mp4)) as container:
        decoded = list(container.decode(video=0))[:30]
    ours = VideoSource(coded_mp4).read(np.arange(30), short_side=short_side)
    h, w = ours.shape[1:3]
    for frame, mine in zip(decoded, ours):
        kwargs = {} if short_side is None else {"width": w, "height": h, "interpolation": "AREA"}
        np.testing.assert_array_equal(mine, frame.to_ndarray(format="rgb24", **kwargs))
