"""The docs cannot rot: every `bash` block of README.md, results/README.md and docs/*.md is run or checked
(docs/stages.md, 'How the docs are tested'), and docs/config_reference.md matches the config dataclasses."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [p for p in [ROOT / "README.md", ROOT / "results" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        if p.is_file()]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
STAGE_MODULES = {"pretrain", "adapt", "finetune", "tubes", "sweep", "synth"}
REPO_PREFIXES = ("configs/", "scripts/", "docs/", "seal_transfer/", "tests/", "results/README.md")
TORCHRUN_FLAGS = {"--standalone", "--no-python", "--no_python", "--run-path", "--run_path"}
MARKER = re.compile(r"<!--\s*test:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")

# Blocks of files whose authors have not marked them yet, keyed by (file name, first command): same syntax as a
# marker. Prefer a marker in the file itself; this list only keeps unmarked blocks from passing silently.
KNOWN_BLOCKS = {
    ("distributed.md", "python -m seal_transfer.synth 'cache_dir=~/.cache/seal_transfer'"): "parse",
    ("distributed.md", "torchrun --standalone --nproc_per_node 8 -m seal_transfer.pretrain --config "
                       "configs/pretrain_seal_clips_r50.yaml run_dir=runs/r50 trainer.devices=8 trainer.strategy=ddp "
                       "trainer.precision=bf16-mixed"): "parse",
    ("distributed.md", "torchrun --nnodes 4 --nproc_per_node 8 --node_rank '$NODE_RANK' --rdzv_backend c10d "
                       "--rdzv_endpoint '$MASTER:29500' -m seal_transfer.adapt --config "
                       "configs/pretrain_seal_clips_r50.yaml data.target.root=/data/ava run_dir=/shared/runs/r50 "
                       "trainer.devices=8 trainer.num_nodes=4 trainer.strategy=ddp"): "parse",
    ("distributed.md", "srun python -m seal_transfer.adapt --config configs/pretrain_seal_clips_r50.yaml "
                       "data.target.root=/data/ava run_dir=/shared/runs/r50 trainer.devices=8 trainer.num_nodes=4 "
                       "trainer.strategy=ddp data.num_workers=10"): "parse",
    ("distributed.md", "torchrun --standalone --nproc_per_node 2 -m seal_transfer.adapt --config configs/smoke.yaml "
                       "run_dir=/tmp/r trainer.accelerator=cpu trainer.devices=2 trainer.strategy=ddp"):
        "parse, covered-by tests/test_distributed.py::test_two_process_pseudo_labels_equal_single_process",
}


@dataclass
class Block:
    path: Path
    line: int
    commands: list[str]
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _commands(lines: list[str]) -> list[str]:
    """Shell commands of a block: comments dropped, `\\` continuations joined, a leading `$ ` prompt removed."""
    out: list[str] = []
    pending = ""
    for raw in lines:
        line = raw.rstrip()
        if pending:
            line = pending + " " + line.strip()
            pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        stripped = line.strip().removeprefix("$ ")
        if not stripped or stripped.startswith("#"):
            continue
        try:
            words = shlex.split(stripped, comments=True)
        except ValueError:
            words = stripped.split()
        if words:
            out.append(shlex.join(words))
    return out


def extract_blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, lang = i, fence.group(1).lower()
        end = start + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if lang in SHELL_LANGS:
            marker = None
            j = start - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            if j >= 0 and (m := MARKER.search(lines[j])):
                marker = m.group(1)
            commands = _commands(lines[start + 1:end])
            if marker is None and commands:
                marker = KNOWN_BLOCKS.get((path.name, commands[0]))
            blocks.append(Block(path, start + 1, commands, marker))
        i = end + 1
    return blocks


ALL_BLOCKS = [b for path in DOCS for b in extract_blocks(path)]


def parse_marker(marker: str) -> tuple[str, list[str]]:
    """'parse, covered-by X, covered-by Y' → ('parse', ['X', 'Y']); 'skip: why' → ('skip', ['why'])."""
    if marker.startswith("skip"):
        reason = marker[4:].lstrip(":").strip()
        return "skip", [reason] if reason else []
    parts = [p.strip() for p in marker.split(",") if p.strip()]
    mode, covered = parts[0], []
    for part in parts[1:]:
        if not part.startswith("covered-by "):
            raise AssertionError(f"marker part '{part}': expected 'covered-by PATH[::TEST]'")
        covered.append(part[len("covered-by "):].strip())
    return mode, covered


def _python_target(words: list[str]) -> tuple[str, str, list[str]] | None:
    """('module', name, args) for `python -m X ...` / `torchrun ... -m X ...`, ('script', path, args) for
    `python path.py ...`, ('bash', path, args) for `bash path.sh`, None otherwise. Leading VAR=value are skipped."""
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]
    if words[:1] == ["srun"]:  # SLURM: `srun [--opt=value]... python ...`
        words = words[1:]
        while words and words[0].startswith("-"):
            words = words[1:]
    if not words:
        return None
    head = os.path.basename(words[0])
    if head in ("python", "python3", "torchrun"):
        rest = words[1:]
        while rest and rest[0].startswith("-") and rest[0] != "-m":
            takes_value = head == "torchrun" and "=" not in rest[0] and rest[0] not in TORCHRUN_FLAGS
            rest = rest[2:] if takes_value else rest[1:]
        if rest[:1] == ["-m"] and len(rest) > 1:
            return "module", rest[1], rest[2:]
        if rest and rest[0].endswith(".py"):
            return "script", rest[0], rest[1:]
    if head in ("bash", "sh") and len(words) > 1 and words[1].endswith(".sh"):
        return "bash", words[1], words[2:]
    return None


def _in_process(module: str, args: list[str]) -> tuple[int, str]:
    """Run `python -m module args` in this process (imports are shared, so checking dozens of commands is fast)."""
    from seal_transfer.cli import guarded_main

    mod = importlib.import_module(module)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = guarded_main(mod.main, args)
        except SystemExit as exc:  # argparse --help / usage errors
            code = int(exc.code or 0)
    return code, out.getvalue() + err.getvalue()


def check_parse(command: str) -> None:
    words = shlex.split(command)
    for word in words:
        for token in re.split(r"[=,]", word):
            if token.startswith(REPO_PREFIXES) and "{" not in token:
                assert (ROOT / token).exists(), f"'{command}': {token} does not exist in the repository"
    target = _python_target(words)
    if target is None:
        allowed = {"cd", "mkdir", "cp", "ls", "cat", "export", "echo", "ln", "mv", "tar"}
        assert os.path.basename(words[0]) in allowed, (
            f"'{command}': not a command the docs test knows how to check; run it from a script/test or mark "
            "the block '<!-- test: skip: REASON -->'"
        )
        return
    kind, name, args = target
    if kind == "bash":
        assert (ROOT / name).is_file(), f"'{command}': {name} not found"
        proc = subprocess.run(["bash", "-n", str(ROOT / name)], capture_output=True, text=True)
        assert proc.returncode == 0, f"'{command}': bash -n failed: {proc.stderr}"
        return
    if kind == "script":
        assert (ROOT / name).is_file(), f"'{command}': {name} not found"
        proc = subprocess.run([sys.executable, str(ROOT / name), "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, f"'{command}': {name} --help exited {proc.returncode}: {proc.stderr[-800:]}"
        return
    assert importlib.util.find_spec(name) is not None, f"'{command}': module {name} not found"
    short = name.rsplit(".", 1)[-1]
    if name.startswith("seal_transfer.") and short in STAGE_MODULES:
        code, output = _in_process(name, [*args, "--print-config"])
        assert code == 0, f"'{command}' --print-config exited {code}: {output[-800:]}"
    else:
        code, output = _in_process(name, ["--help"])
        assert code == 0, f"'{command}': {name} --help exited {code}: {output[-800:]}"


def check_covered(reference: str) -> None:
    path, _, test = reference.partition("::")
    assert (ROOT / path).exists(), f"covered-by {reference}: {path} does not exist"
    if test:
        text = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^def {re.escape(test)}\(", text, re.M), f"covered-by {reference}: no test {test}"


def test_docs_have_commands_to_check() -> None:
    names = {p.name for p in DOCS}
    assert {"stages.md", "real_data.md", "reproduce.md"} <= names
    assert sum(len(b.commands) for b in ALL_BLOCKS) >= 20


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.where for b in ALL_BLOCKS])
def test_every_shell_block_is_marked_and_holds(block: Block) -> None:
    assert block.marker is not None, (
        f"{block.where}: unmarked bash block; put '<!-- test: run|parse|skip: why -->' on the line above it "
        "(docs/stages.md, 'How the docs are tested')"
    )
    mode, extra = parse_marker(block.marker)
    if mode == "skip":
        assert extra, f"{block.where}: 'skip' needs a reason: <!-- test: skip: REASON -->"
        return
    assert mode in ("run", "parse"), f"{block.where}: unknown marker mode '{mode}'"
    assert block.commands, f"{block.where}: empty block"
    for reference in extra:
        check_covered(reference)
    for command in block.commands:
        if mode == "run":
            proc = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=300,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore"}, executable="/bin/bash")
            assert proc.returncode == 0, f"{block.where}: '{command}' exited {proc.returncode}: {proc.stderr[-800:]}"
        else:
            check_parse(command)


def test_marker_syntax_errors_are_caught() -> None:
    assert parse_marker("parse, covered-by tests/x.py::test_y") == ("parse", ["tests/x.py::test_y"])
    assert parse_marker("skip: needs ffmpeg") == ("skip", ["needs ffmpeg"])
    assert parse_marker("skip") == ("skip", [])
    with pytest.raises(AssertionError):
        parse_marker("parse, runs-by something")
    with pytest.raises(AssertionError):
        check_parse("python -m seal_transfer.pretrain --config configs/no_such_file.yaml")
    with pytest.raises(AssertionError):
        check_parse("python -m seal_transfer.pretrain adapt.lamda_c=0.3")  # misspelt key: --print-config fails
    with pytest.raises(AssertionError):
        check_covered("tests/test_docs.py::test_that_does_not_exist")


def test_block_extraction(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("text\n<!-- test: run -->\n\n```bash\n# comment\npython -m a \\\n  --flag b  # note\n$ ls\n```\n"
                   "```python\nprint(1)\n```\n```sh\necho hi\n```\n", encoding="utf-8")
    blocks = extract_blocks(doc)
    assert [b.marker for b in blocks] == ["run", None]
    assert blocks[0].commands == ["python -m a --flag b", "ls"]
    assert _python_target(["CUDA_VISIBLE_DEVICES=0", "torchrun", "--standalone", "--nproc_per_node", "8", "-m", "m",
                           "k=v"]) == ("module", "m", ["k=v"])
    assert _python_target(["srun", "--mpi=none", "python", "-m", "m", "x=1"]) == ("module", "m", ["x=1"])


def test_config_reference_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("gen_config_reference", ROOT / "scripts" / "gen_config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (ROOT / "docs" / "config_reference.md").read_text(encoding="utf-8")
    assert committed == module.render(), "docs/config_reference.md is stale: run python scripts/gen_config_reference.py"
    assert "`adapt.lambda_c` | `0.3`" in committed


def _layout_entries() -> list[str]:
    """The README's layout block, one text per entry (an entry line starts with two spaces, then continues)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    entries: list[str] = []
    for line in block.splitlines():
        if re.match(r"^  \S", line) or not entries:
            entries.append(line)
        else:
            entries[-1] += "\n" + line
    return entries


def test_readme_layout_names_every_module() -> None:
    """Every module of the package is named in the README's layout entry of its folder (a nested folder by its
    name), so the layout cannot drift from the tree."""
    entries = _layout_entries()
    package = ROOT / "seal_transfer"
    missing = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if path.name == "__init__.py":
            continue
        if len(rel.parts) == 1:
            if not any(re.search(rf"(^|\s){re.escape(path.name)}\b", entry) for entry in entries):
                missing.append(str(rel))
            continue
        folder = rel.parts[0] + "/"
        entry = next((e for e in entries if re.search(rf"(^|\s){re.escape(folder)}", e)), None)
        wanted = rel.parts[1] + "/" if len(rel.parts) > 2 else path.stem
        if entry is None or not re.search(rf"(^|[\s(,]){re.escape(wanted)}", entry):
            missing.append(str(rel))
    assert not missing, f"README.md's layout does not name: {', '.join(missing)}"
