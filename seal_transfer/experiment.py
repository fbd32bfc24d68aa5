"""Experiments that outlive a session: run records and a runner that skips what a record already holds.

A run record is the small committed JSON a finished experiment run leaves under `results/runs/<experiment>/`.

Run directories (checkpoints, videos of features) are too big to commit and do not outlive a session, so an
experiment that takes several sessions keeps its evidence here instead: one record per finished run with its
metrics, per-round statistics, the hash of everything that defines the run, the code commit and the wall time.
Experiment scripts skip a run whose record carries the current hash, rerun one whose hash differs, and build
their tables from records only, so a table can be completed over several sessions.

The hash covers what changes the result (the stage arguments, the text of the config files, the upstream runs'
hashes) and nothing that does not (run-directory paths, the commit: a refactor must not invalidate finished
runs; the commit is recorded beside the hash so a reader can see which code produced each number).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from seal_transfer.utils.fileio import write_json
from seal_transfer.utils.locks import LockBusy, process_lock

RECORD_VERSION = 1

# Metrics that legitimately differ between two runs of one command: timings (the tubes stage's per-stream
# extraction time is its "seconds"). Everything else a stage writes must repeat exactly.
TIMING_KEYS = frozenset({"wall_time_s", "labelling_seconds", "boxes_per_second", "train_loop_seconds",
                         "train_samples_per_s", "seconds"})


def comparable_metrics(metrics: Any, run_dir: Path) -> Any:
    """`metrics` without its timings and with the run folder's own path replaced by RUN: what two runs of one
    command must agree on (resume tests, `scripts/smoke_chain.py`)."""
    if isinstance(metrics, dict):
        return {k: comparable_metrics(v, run_dir) for k, v in metrics.items() if k not in TIMING_KEYS}
    if isinstance(metrics, list):
        return [comparable_metrics(v, run_dir) for v in metrics]
    if isinstance(metrics, str):
        return metrics.replace(str(run_dir), "RUN")
    return metrics


def config_hash(*parts: Any) -> str:
    """Stable 16-hex-digit hash of JSON-serialisable parts (dict keys sorted)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def git_commit(root: Path) -> str:
    """The checkout's commit (with `+dirty` when tracked files differ), or 'unknown' outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def record_path(records_dir: Path, name: str) -> Path:
    return records_dir / f"{name}.json"


def read_record(path: Path) -> Optional[dict[str, Any]]:
    """A record, or None if it is absent or unreadable (a half-written record cannot exist: writes are atomic)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("record_version") == RECORD_VERSION else None


def matching_record(path: Path, expected_hash: str) -> Optional[dict[str, Any]]:
    """The record at `path` if it was made with `expected_hash`, else None (absent or stale: rerun)."""
    record = read_record(path)
    return record if record is not None and record.get("config_hash") == expected_hash else None


def write_record(path: Path, *, experiment: str, name: str, config_hash: str, commit: str, wall_time_s: float,
                 fields: dict[str, Any]) -> dict[str, Any]:
    # The record's own keys come last: a stage metric of the same name (e.g. the stage's `wall_time_s`, which
    # excludes start-up) must not overwrite them; stages' own timings travel as `stage_wall_time_s`.
    record = {
        **fields,
        "record_version": RECORD_VERSION,
        "experiment": experiment,
        "name": name,
        "config_hash": config_hash,
        "commit": commit,
        "wall_time_s": round(float(wall_time_s), 1),
    }
    write_json(path, record)
    return record


def load_records(records_dir: Path) -> list[dict[str, Any]]:
    """Every readable record of one experiment, sorted by name."""
    if not records_dir.is_dir():
        return []
    out = [r for r in (read_record(p) for p in sorted(records_dir.glob("*.json"))) if r is not None]
    return sorted(out, key=lambda r: str(r.get("name")))


# Two-sided 95 % Student-t quantiles t_{0.975, df} for df = 1..30 (standard tables); beyond 30 the normal 1.96
# is within 2 % of the exact value.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.96


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1); std is 0 for one value and NaN for none."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    m = sum(values) / n
    return m, (math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0)


def paired_difference(a: dict[Any, float], b: dict[Any, float]) -> dict[str, Any]:
    """Mean of a[s] - b[s] over the seeds both have, with its 95 % t-interval (NaN bounds for fewer than 2)."""
    seeds = sorted(set(a) & set(b))
    return _summarise_differences([a[s] - b[s] for s in seeds], seeds)


def pooled_difference(*parts: dict[str, Any]) -> dict[str, Any]:
    """Several paired differences (each from `paired_difference`, e.g. one per independent set of pretrains) taken
    as one sample of their per-seed differences: more pairs, so a tighter interval, if the sets measure one effect.
    Seeds are named `<part>:<seed>` since the same seed number in two sets is two different runs."""
    diffs = [d for part in parts for d in part["diffs"]]
    seeds = [f"{i}:{s}" for i, part in enumerate(parts) for s in part["seeds"]]
    return _summarise_differences(diffs, seeds)


def _summarise_differences(diffs: list[float], seeds: list[Any]) -> dict[str, Any]:
    m, s = mean_std(diffs)
    half = t975(len(diffs) - 1) * s / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
    return {"n": len(diffs), "seeds": seeds, "diffs": diffs, "mean": m, "low": m - half, "high": m + half,
            "wins": sum(d > 0 for d in diffs)}


def describe_interval(diff: dict[str, Any], unit: str = "") -> str:
    if diff["n"] == 0:
        return "—"
    if diff["n"] < 2:
        return f"{diff['mean']:+.2f}{unit} (1 seed)"
    return f"{diff['mean']:+.2f}{unit} [{diff['low']:+.2f}, {diff['high']:+.2f}] ({diff['wins']}/{diff['n']} seeds > 0)"


def verdict(diff: dict[str, Any]) -> str:
    """'above' / 'below' when the 95 % interval excludes 0, else 'inconclusive' (or 'too few seeds')."""
    if diff["n"] < 2:
        return "too few seeds"
    if diff["low"] > 0:
        return "above"
    if diff["high"] < 0:
        return "below"
    return "inconclusive"


_VERDICT_PHRASES = {"above": "the paired 95 % interval lies above zero",
                    "below": "the paired 95 % interval lies below zero",
                    "inconclusive": "the paired 95 % interval includes zero",
                    "too few seeds": "fewer than 2 paired seeds: no verdict yet"}


def verdict_phrase(diff: dict[str, Any]) -> str:
    """`verdict` as a clause a report can print: 'the paired 95 % interval lies above zero', ..."""
    return _VERDICT_PHRASES[verdict(diff)]


def by_seed(records: Iterable[dict[str, Any]], metric: str, **match: Any) -> dict[int, float]:
    """{seed: record[metric]} over records whose fields equal `match`."""
    out: dict[int, float] = {}
    for r in records:
        if all(r.get(k) == v for k, v in match.items()) and r.get(metric) is not None:
            out[int(r["seed"])] = float(r[metric])
    return out


@dataclass
class Job:
    """One stage invocation of an experiment: `python -m seal_transfer.<stage> --config C... run_dir=D args...`.

    `upstream` jobs must finish first; their hashes enter this job's hash, so a changed pretrain reruns
    everything built on it. `fields` go into the record beside what `extract` reads from the stage's files.
    """

    name: str
    stage: str
    args: list[str]
    run_dir: Path
    upstream: list[Job] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    extract: Optional[Callable[[Path], dict[str, Any]]] = None
    configs: Optional[list[str]] = None  # YAML files of this job instead of the runner's
    records_dir: Optional[Path] = None  # where its record lives, if not the runner's (a run another experiment owns)

    @property
    def out_dir(self) -> Path:
        return self.run_dir / self.stage

    @property
    def weights(self) -> Path:
        return self.out_dir / "model.pt"


class Runner:
    """Runs jobs as subprocesses, once each, skipping those whose record matches; writes a record per finished job.

    `configs` are the YAML files every command takes; their text is part of every hash. A job whose record
    matches is not rerun even if its run directory is gone — unless a later job needs its weights, in which case
    it is rerun in place. Such a rebuild keeps the record (the rows already built on the first run stay described
    by it) and appends what the rebuild measured under `rebuilds`: CPU training is not bit-reproducible across
    thread counts, torch builds or code versions, so a rebuilt pretrain can differ. Every record names the weights
    it was built on (`upstream_weights`, a digest per upstream job), so a row built on a rebuild can be told from
    one built on the original (`built_on_rebuild`).
    """

    def __init__(self, root: Path, experiment: str, configs: Sequence[str], common: Sequence[str],
                 records_dir: Path, run_root: Path, deadline: Optional[float] = None, log: Optional[Path] = None):
        self.root = root
        self.experiment = experiment
        self.configs = list(configs)
        self.common = list(common)
        self.records_dir = records_dir
        self.run_root = run_root
        self.deadline = deadline
        self.log = log or run_root / "commands.log"
        self.commit = git_commit(root)
        self._hashes: dict[str, str] = {}
        self.ran: list[str] = []
        self.reused: list[str] = []
        self.skipped_for_time: list[str] = []

    def _configs(self, job: Job) -> list[str]:
        return self.configs if job.configs is None else list(job.configs)

    def job_hash(self, job: Job) -> str:
        if job.name not in self._hashes:
            texts = [(c, (self.root / c).read_text(encoding="utf-8")) for c in self._configs(job)]
            self._hashes[job.name] = config_hash(
                job.stage, texts, self.common, job.args, [self.job_hash(u) for u in job.upstream]
            )
        return self._hashes[job.name]

    def command(self, job: Job, extra: Sequence[str] = ()) -> list[str]:
        config_args = [a for c in self._configs(job) for a in ("--config", c)]
        return [sys.executable, "-m", f"seal_transfer.{job.stage}", *config_args, f"run_dir={job.run_dir}",
                *self.common, *job.args, *extra]

    def record_of(self, job: Job) -> Optional[dict[str, Any]]:
        return matching_record(record_path(job.records_dir or self.records_dir, job.name), self.job_hash(job))

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.time() > self.deadline

    def ensure(self, job: Job, need_weights: bool = False) -> Optional[dict[str, Any]]:
        """The job's record, running it (and its upstream) if needed; None if the time budget ran out first."""
        record = previous = self.record_of(job)
        if record is not None and not (need_weights and not job.weights.exists()):
            if job.name not in self.reused:
                self.reused.append(job.name)
            return record
        for up in job.upstream:
            if self.ensure(up, need_weights=True) is None:
                return None
        if self.out_of_time():
            self.skipped_for_time.append(job.name)
            return None
        inits = [f"init={up.weights}" for up in job.upstream[:1]]
        cmd = self.command(job, inits)
        shown = " ".join(shlex.quote("python" if c == sys.executable else c) for c in cmd)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        load_before = os.getloadavg()[0]
        cpu_before = _children_cpu_seconds()
        commit = git_commit(self.root)  # the code this run imports (the checkout may move on during a long runner)
        started = time.time()
        with self.log.open("a") as handle:
            handle.write(f"\n$ {shown}\n")
            handle.flush()
            proc = subprocess.run(cmd, cwd=self.root, stdout=handle, stderr=subprocess.STDOUT,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore"})
        wall = time.time() - started
        print(f"  [{wall:6.0f} s] {job.name} -> exit {proc.returncode}", flush=True)
        if proc.returncode != 0:
            raise SystemExit(f"{job.name}: command failed (exit {proc.returncode}); see {self.log}\n{shown}")
        metrics = json.loads((job.out_dir / "metrics.json").read_text())
        stage_wall = float(metrics.get("wall_time_s") or wall)
        cpu = _children_cpu_seconds() - cpu_before
        # CPU seconds the run used (its DataLoader workers included): the same work costs the same CPU time however
        # busy the machine was, while wall time grows with whatever else ran beside it.
        conditions = {"load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2),
                      "cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                      "cpu_seconds": round(cpu, 1), "cpu_per_wall": round(cpu / wall, 2) if wall > 0 else None,
                      **machine_facts()}
        measured = job.extract(job.out_dir) if job.extract else {}
        digests = {"weights_sha256": weights_digest(job.weights),
                   "upstream_weights": {up.name: weights_digest(up.weights) for up in job.upstream}}
        self.ran.append(job.name)
        if previous is not None:
            return self._note_rebuild(job, previous, measured, digests, commit, wall, conditions)
        fields = {**job.fields, "stage": job.stage, "command": shown.replace(str(self.root) + "/", ""),
                  "conditions": conditions, **measured, **digests}
        experiment = self.experiment if job.records_dir is None else job.records_dir.name
        return write_record(record_path(job.records_dir or self.records_dir, job.name), experiment=experiment,
                            name=job.name, config_hash=self.job_hash(job), commit=commit, wall_time_s=wall,
                            fields={**fields, "stage_wall_time_s": stage_wall})

    def _note_rebuild(self, job: Job, previous: dict[str, Any], measured: dict[str, Any], digests: dict[str, Any],
                      commit: str, wall: float, conditions: dict[str, Any]) -> dict[str, Any]:
        """Keep `previous` and append this rebuild's measurements to its `rebuilds`; say so when they differ."""
        same = all(previous.get(k) == v for k, v in measured.items() if not _is_timing(k))
        rebuild = {"commit": commit, "wall_time_s": round(wall, 1), "conditions": conditions, **digests,
                   "metrics_match": same, "metrics": measured}
        record = {**previous, "rebuilds": [*previous.get("rebuilds", []), rebuild]}
        write_json(record_path(job.records_dir or self.records_dir, job.name), record)
        if not same:
            diff = ", ".join(f"{k} {previous.get(k)!r} -> {v!r}" for k, v in measured.items()
                             if previous.get(k) != v and not _is_timing(k) and not isinstance(v, (list, dict)))
            what = diff or "per-round statistics differ"
            before = previous.get("conditions") or {}
            threads = before.get("omp_num_threads"), conditions["omp_num_threads"]
            if threads[0] != threads[1]:
                what += f"; OMP_NUM_THREADS was {threads[0]}, is {threads[1]}: rerun with the original's to reproduce"
            changed = [f"{k} {before[k]!r} -> {conditions[k]!r}" for k in MACHINE_KEYS
                       if k in before and before[k] != conditions.get(k)]
            if changed:
                what += "; the machine differs: " + ", ".join(changed)
            print(f"  note: {job.name} rebuilt for its weights does not reproduce its record ({what}); the record "
                  "is kept and the rebuild noted under 'rebuilds'", flush=True)
        return record


MACHINE_KEYS = ("cpu_model", "cpu_avx512", "torch_version")


def machine_facts() -> dict[str, Any]:
    """What a run's floating-point results depend on besides code, config and thread count: the CPU (its vector
    instructions pick torch's kernels) and the torch build. Read without importing torch, so a runner stays light."""
    from importlib.metadata import PackageNotFoundError, version

    model, flags = None, ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model is None:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value
    except OSError:  # not Linux: the platform's own name, vector flags unknown
        import platform

        model = platform.processor() or platform.machine()
    try:
        torch_version: Optional[str] = version("torch")
    except PackageNotFoundError:
        torch_version = None
    return {"cpu_model": model, "cpu_avx512": ("avx512f" in flags.split()) if flags else None,
            "torch_version": torch_version}


def _is_timing(key: str) -> bool:
    """Timings (wall_time_s, train_samples_per_s) differ on every run; a rebuild reproduces when the rest agree."""
    return key.endswith("_s") or "wall" in key


def weights_digest(path: Path) -> Optional[str]:
    """The first 16 hex digits of the file's SHA-256 (None if absent): which weights a run was built on."""
    if not path.exists():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def built_on_rebuild(record: dict[str, Any], upstream: Optional[dict[str, Any]]) -> bool:
    """Whether `record` was built on a rebuild of `upstream` that did not reproduce the original run (its weights
    digest is that of one of upstream's rebuilds whose metrics differ). A rebuild whose metrics match counts as the
    original: its file digest differs anyway, as a checkpoint also holds its run's metadata."""
    if upstream is None:
        return False
    used = (record.get("upstream_weights") or {}).get(upstream.get("name"))
    return (used is not None and used != upstream.get("weights_sha256")
            and used in {r.get("weights_sha256") for r in upstream.get("rebuilds", [])
                         if not r.get("metrics_match", False)})


def _children_cpu_seconds() -> float:
    """User + system CPU time of every finished child process so far (`getrusage(RUSAGE_CHILDREN)`)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def adapt_round_summary(adapt_dir: Path) -> list[dict[str, Any]]:
    """Per-round pseudo-label statistics of a finished adapt stage, the fields tables and plots use."""
    keys = ("round", "labels", "lambda_c", "samples_seen", "kept", "kept_fraction", "pseudo_label_precision",
            "argmax_precision", "majority_class", "majority_class_frequency", "kept_classes", "largest_class",
            "largest_class_share", "kept_label_entropy", "truth_classes", "kept_truth_class_coverage",
            "kept_label_breakdown")
    rounds = []
    for path in sorted(adapt_dir.glob("round_*/stats.json"), key=lambda p: int(p.parent.name.split("_")[1])):
        stats = json.loads(path.read_text())
        rounds.append({k: stats.get(k) for k in keys})
    return rounds


def run_jobs(runner: Runner, jobs: Iterable[Job], started: float, names: Optional[Sequence[str]] = None) -> str:
    """Ensure every job (optionally only those named) until the runner's time budget stops it; returns the
    provenance line for the report."""
    import platform

    for job in jobs:
        if names and job.name not in names:
            continue
        if runner.ensure(job) is None:
            print(f"time budget reached before {job.name}; the next invocation continues from the records")
            break
    return (f"This invocation: {len(runner.ran)} runs executed, {len(runner.reused)} reused from matching records, "
            f"{(time.time() - started) / 60:.1f} min on {os.cpu_count()} CPU cores "
            f"({platform.processor() or platform.machine()}); code commit {runner.commit}.")


def parse_shard(text: Optional[str]) -> Optional[tuple[int, int]]:
    """'I/N' (0 <= I < N) -> (I, N); None -> None. Bad text: SystemExit with one line."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise SystemExit(f"--shard: expected I/N such as 0/2, got {text!r}") from None
    if not 0 <= i < n:
        raise SystemExit(f"--shard: need 0 <= I < N, got {text!r}")
    return i, n


def _chain(job: Job) -> list[Job]:
    """The job and its first-upstream ancestors (finetune -> adapt -> pretrain), nearest first."""
    chain = [job]
    while chain[-1].upstream:
        chain.append(chain[-1].upstream[0])
    return chain


def shard_key(job: Job) -> str:
    """What a shard owns: the adapt run in the job's chain (with every finetune built on it), else the job itself.
    Two shards therefore never run the same adapt or finetune; the pretrains they share must exist beforehand."""
    return next((j.name for j in _chain(job) if j.stage == "adapt"), job.name)


def deal_shard(jobs: Sequence[Job], shard: Optional[tuple[int, int]]) -> list[Job]:
    """The jobs of this invocation's shard (`--shard I/N`): the `shard_key`s in order of first appearance in the
    planned list, dealt out by position (key k to shard k mod N). Dealing by position keeps the shards' shares
    level all along the plan's order (a hash of the name left one of two queues with 49 runs and the other with
    6). `jobs` must be the whole planned list, not what is left of it, so every shard deals the same way
    whenever it starts."""
    if shard is None:
        return list(jobs)
    order: dict[str, int] = {}
    for job in jobs:
        order.setdefault(shard_key(job), len(order))
    return [job for job in jobs if order[shard_key(job)] % shard[1] == shard[0]]


def run_claimed(pairs: Sequence[tuple[Runner, Job]], claims_dir: Path) -> bool:
    """Run `pairs` in order beside other queues running the same list: the work is shared as it goes, not dealt out
    beforehand. Each chain (`shard_key`: an adapt with every finetune on it) is claimed with a process lock under
    `claims_dir` while it runs. A chain that another queue holds is deferred; once the list is through, each
    deferred one is waited for and then reused from its record. The kernel drops a dead queue's claim, so a
    killed queue leaves nothing to clean up. Shared pretrains must exist first (`shared_upstream_ready`).
    Returns False when the time budget ran out."""
    claims_dir.mkdir(parents=True, exist_ok=True)
    deferred: list[tuple[Runner, Job]] = []
    for runner, job in pairs:
        try:
            with process_lock(claims_dir / f"{shard_key(job)}.lock", note=f"{os.getpid()} {job.name}\n"):
                if runner.ensure(job) is None:
                    return False
        except LockBusy:
            deferred.append((runner, job))
    for runner, job in deferred:
        with process_lock(claims_dir / f"{shard_key(job)}.lock", wait=True):
            if runner.ensure(job) is None:
                return False
    return True


def shared_upstream_ready(runner: Runner, job: Job) -> bool:
    """Every pretrain in the job's chain has its record and weights: the condition for running it in a shard
    (a missing pretrain would be run by every shard that needs it, into one folder)."""
    return all(runner.record_of(up) is not None and up.weights.exists()
               for up in _chain(job)[1:] if up.stage == "pretrain")


def planned_runs(planned: Iterable[tuple[Runner, Job]], root: Path, labels: Optional[dict[int, str]] = None
                 ) -> list[str]:
    """A dry run: every planned job and its upstream, each once and in the order they would run, marked 'reuse'
    (a record matches its hash) or 'run', with the folder its record lives in. `labels`: {id(runner): tag}."""
    seen: set[tuple[Path, str]] = set()
    lines: list[str] = []

    def visit(runner: Runner, job: Job) -> None:
        for up in job.upstream:
            visit(runner, up)
        where = (job.records_dir or runner.records_dir).relative_to(root)
        if (where, job.name) in seen:  # one name may recur in another record folder (a block): a different run
            return
        seen.add((where, job.name))
        tag = f"  {labels[id(runner)]}" if labels else ""
        lines.append(f"{'reuse' if runner.record_of(job) else 'run  '}{tag}  {job.name}  ({where})")

    for runner, job in planned:
        visit(runner, job)
    return lines


def provenance_lines(records: Iterable[dict[str, Any]], note: str) -> list[str]:
    """The report's closing section: how this invocation ran, and the commit, wall time and command per record."""
    lines = ["## Provenance", "", note, "", "| record | commit | wall (s) | command |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['commit']} | {r['wall_time_s']:.0f} | `{r.get('command', '')}` |" for r in records]
    return lines + [""]
