"""Untrusted files stay data: checkpoints, proposal pickles and YAML never run code unless explicitly trusted;
ids from annotation files cannot leave the data root; nothing is downloaded at run time."""

from __future__ import annotations

import codecs
import os
import pickle
import re
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from seal_transfer.config.loader import load_config
from seal_transfer.data.datasets import find_video
from seal_transfer.data.formats.ava import read_proposals_pkl
from seal_transfer.errors import UserError
from seal_transfer.models.checkpoints import read_checkpoint

PACKAGE = Path(__file__).resolve().parents[1] / "seal_transfer"


class _Payload:
    """Unpickling this creates a marker file: proof that a loader executed code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def test_checkpoint_with_code_is_refused_without_opt_in(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": _Payload(marker)}, path)
    with pytest.raises(UserError, match=r"evil\.ckpt: .*full pickle.*allow_pickle"):
        read_checkpoint(path)
    assert not marker.exists()


def test_legacy_pickle_checkpoint_loads_only_with_opt_in_and_warns(tmp_path: Path) -> None:
    path = tmp_path / "legacy.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": Path("x")}, path)
    with pytest.warns(UserWarning, match="full pickle"):
        obj = read_checkpoint(path, allow_pickle=True)
    assert torch.equal(obj["state_dict"]["w"], torch.ones(2))


def test_plain_checkpoint_loads_without_warning(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "seal_transfer": {"class_ids": [1, 2]}}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_checkpoint(path)["seal_transfer"]["class_ids"] == [1, 2]


def test_every_torch_load_in_the_package_is_weights_only() -> None:
    offenders = []
    for file in PACKAGE.rglob("*.py"):
        for lineno, line in enumerate(file.read_text().splitlines(), start=1):
            if "torch.load(" in line and "weights_only=True" not in line and "weights_only=False" not in line:
                offenders.append(f"{file.relative_to(PACKAGE)}:{lineno}")
    assert not offenders, offenders
    # the only full-pickle load is the explicit opt-in path of read_checkpoint
    full = [f for f in PACKAGE.rglob("*.py") if "weights_only=False" in f.read_text()]
    assert [f.name for f in full] == ["checkpoints.py"]


def test_proposal_pickle_needs_trust(tmp_path: Path) -> None:
    path = tmp_path / "boxes.pkl"
    with path.open("wb") as handle:
        pickle.dump({"vid,0902": np.zeros((1, 5), np.float32)}, handle)
    with pytest.raises(UserError, match="trust_pickle"):
        read_proposals_pkl(path)
    assert len(read_proposals_pkl(path, trust=True)) == 1


def test_trusted_proposal_pickle_still_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    with path.open("wb") as handle:
        pickle.dump({"vid,0902": _Payload(marker)}, handle)
    with pytest.raises(UserError, match=r"evil\.pkl: not a readable proposal pickle .*refusing"):
        read_proposals_pkl(path, trust=True)
    assert not marker.exists()


def _proposals() -> dict[str, np.ndarray]:
    return {"vid,0902": np.array([[0.1, 0.2, 0.5, 0.6, 0.9], [0.3, 0.1, 0.8, 0.9, 0.4]]),  # float64, as mmcv writes
            "vid,0903": np.zeros((0, 5), np.float32)}  # a keyframe without proposals: empty bytes in protocol <= 2


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_trusted_proposal_pickle_loads_in_every_protocol(tmp_path: Path, protocol: int) -> None:
    """mmcv.dump writes protocol 2, whose arrays need `_codecs.encode` (and `bytes()` for empty ones)."""
    path = tmp_path / "proposals.pkl"
    with path.open("wb") as handle:
        pickle.dump(_proposals(), handle, protocol=protocol)
    if protocol <= 2:
        assert b"_codecs\nencode" in path.read_bytes()
    table = read_proposals_pkl(path, trust=True)
    assert table.video_ids.tolist() == ["vid", "vid"] and table.timestamps.tolist() == [902.0, 902.0]
    np.testing.assert_allclose(table.boxes, _proposals()["vid,0902"][:, :4], rtol=1e-6)
    np.testing.assert_allclose(table.scores, [0.9, 0.4], rtol=1e-6)


def test_shared_mmaction2_proposal_fixture_loads(shared_data: Path) -> None:
    path = shared_data / "fixtures" / "mmaction2" / "eval_detection" / "proposal.pkl"
    assert path.read_bytes()[:2] == b"\x80\x02"  # protocol 2
    table = read_proposals_pkl(path, trust=True)
    assert len(table) == 30 and len(set(table.video_ids.tolist())) == 3


class _Call:
    """Pickles as `func(*args)`: what a hostile file can ask the unpickler to run."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self):  # noqa: ANN204
        return (self.func, self.args)


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        (_Call(os.system, "true"), "posix.system"),
        (_Call(eval, "1"), "__builtin__.eval"),
        (_Call(codecs.encode, b"eJwDAAAAAAE=", "base64"), "_codecs.encode(bytes, 'base64')"),
        (_Call(codecs.encode, "abc", "rot13"), "_codecs.encode(str, 'rot13')"),
        (_Call(bytes, 10**6), "builtins.bytes with arguments"),
    ],
    ids=["os.system", "eval", "codecs-base64", "codecs-rot13", "bytes-with-size"],
)
def test_protocol_2_pickle_allows_no_other_call(tmp_path: Path, payload: _Call, refused: str) -> None:
    """Allowing `_codecs.encode` and `bytes` for protocol 2 opens exactly latin1 str -> bytes and `bytes()`."""
    path = tmp_path / "evil.pkl"
    with path.open("wb") as handle:
        pickle.dump({"vid,0902": payload}, handle, protocol=2)
    with pytest.raises(UserError, match=r"evil\.pkl: not a readable proposal pickle .*refusing") as info:
        read_proposals_pkl(path, trust=True)
    assert refused in str(info.value)


def test_yaml_config_cannot_construct_python_objects(tmp_path: Path) -> None:
    from seal_transfer.config import Config

    marker = tmp_path / "pwned"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(f'seed: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(UserError, match=r"evil\.yaml:1: not valid YAML"):
        load_config(Config, [cfg])
    with pytest.raises(UserError):
        load_config(Config, [], [f'seed=!!python/object/apply:os.system ["touch {marker}"]'])
    assert not marker.exists()


@pytest.mark.parametrize("video_id", ["../secret", "../../etc/passwd", "/etc/passwd", "a/../../b", "..", "x\\..\\y"])
def test_video_ids_cannot_escape_the_data_root(tmp_path: Path, video_id: str) -> None:
    (tmp_path / "videos").mkdir()
    (tmp_path / "secret.mp4").write_bytes(b"outside the root")
    with pytest.raises(UserError, match="not a plain name"):
        find_video(tmp_path / "videos", video_id)


def test_plain_video_id_resolves_inside_the_root(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "clip-1.mkv").write_bytes(b"x")
    assert find_video(videos, "clip-1") == videos / "clip-1.mkv"
    assert find_video(videos, "absent").parent == videos


def test_ids_from_a_training_csv_are_checked_before_any_file_is_opened(tmp_path: Path, tiny_world: Path) -> None:
    import shutil

    from seal_transfer.config import Config
    from seal_transfer.data.domains import load_target_split

    root = tmp_path / "ava"
    shutil.copytree(tiny_world / "ava", root, ignore=shutil.ignore_patterns("*.mp4"))
    gt = root / "annotations" / "ava_train_v2.2.csv"
    gt.write_text("/etc/passwd,0902,0.1,0.1,0.5,0.5,1,0\n")
    cfg = load_config(Config, [], [f"data.target.root={root}", f"data.cache_dir={tiny_world.parent}"])
    with pytest.raises(UserError, match=r"'/etc/passwd' is not a plain name"):
        load_target_split(cfg, "train")


_NETWORK_CALLS = re.compile(
    r"torch\.hub|load_state_dict_from_url|urllib\.request|urlopen|requests\.|http\.client|hf_hub|huggingface_hub"
    r"|download_url|pretrained\s*=\s*True"
)


def test_package_source_has_no_download_or_hub_calls() -> None:
    hits = []
    for file in PACKAGE.rglob("*.py"):
        for lineno, line in enumerate(file.read_text().splitlines(), start=1):
            if _NETWORK_CALLS.search(line.split("#", 1)[0]):
                hits.append(f"{file.relative_to(PACKAGE)}:{lineno}: {line.strip()}")
    assert not hits, hits


def test_models_build_and_run_with_the_network_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    from seal_transfer.models.config import ModelConfig
    from seal_transfer.models.slowfast import build_detector

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("TORCH_HOME", os.devnull)  # a hub cache lookup would fail loudly, not fetch
    model = build_detector(ModelConfig(preset="tiny"), 5)
    assert sum(p.numel() for p in model.parameters()) > 0
