"""The main job: train and evaluate the whole unCLIP stack on shapes, one stage after another.

``python -m unclip.demo [--preset shapes_quick] [--fresh] [--minutes M] [--device auto]`` runs
every stage through its real entry point (Hydra experiment ``experiment=<preset>``; on CUDA the
training stages add ``trainer=gpu`` and the others ``device=cuda``), skips stages whose
outputs already exist, and prints each stage's wall time and the evaluation summary. Ctrl-C stops
the running stage with SIGTERM, which saves its ``last.ckpt``; running the same command again
resumes there (a resumed stage's ``max_time`` counts the time it trained before).

With a time budget (shapes_quick: 15 minutes; ``--minutes 0`` turns it off) each training stage
gets ``trainer.max_time`` from what is left of it (:mod:`unclip.demo_budget`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from unclip.demo_budget import (
    MARGIN,
    PRESET_MINUTES,
    TRAINING_STAGES,
    max_time_override,
    stage_seconds,
)

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stage:
    """One step of the demo: a command and the file whose existence means it is done."""

    name: str
    command: list[str]
    done: Path
    describe: Callable[[], str] = field(default=lambda: "")


DATA_PRESETS = {"smoke": "tiny", "shapes_quick": "shapes_quick", "shapes_full": "default"}


def resolve_device(device: str) -> str:
    """``auto``: ``cuda`` where torch sees a GPU, else ``cpu``; ``cpu`` and ``cuda`` as given."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {device!r} (pick a GPU with "
                         "CUDA_VISIBLE_DEVICES=N)")
    return device


def stages(preset: str, data_dir: Path, log_dir: Path, device: str = "cpu") -> list[Stage]:
    """The demo's stages for ``preset``: experiment configs ``configs/experiment/<preset>/``.

    ``device`` (``cpu`` or ``cuda``) goes to every stage: on CUDA the training stages train under
    ``trainer=gpu`` (one GPU, bf16-mixed), else under the configs' CPU trainer; precompute,
    sample and evaluate get ``device=<device>``.
    """
    py = sys.executable
    trainer = ["trainer=gpu"] if device == "cuda" else []
    place = [f"device={device}"]

    def exp(stage: str) -> str:
        return f"experiment={preset}/{stage}"

    emb_dir = data_dir / "embeddings" / preset
    final = Path("checkpoints") / "final.ckpt"
    return [
        Stage("data", [py, "-m", "unclip.data.shapes", "--preset", DATA_PRESETS.get(preset, preset),
                       "--out", str(data_dir / "shapes"), "--quiet"],
              data_dir / "shapes" / "test" / "info.json"),
        Stage("clip", [py, "train_clip.py", exp("clip"), *trainer],
              data_dir / "clip" / f"{preset}_clip.pt"),
        Stage("precompute", [py, "-m", "unclip.data.precompute", exp("precompute"), *place],
              emb_dir / "test" / "stats.json"),
        Stage("prior", [py, "train_prior.py", exp("prior"), *trainer],
              log_dir / "train_prior" / preset / final),
        Stage("decoder", [py, "train_decoder.py", exp("decoder"), *trainer],
              log_dir / "train_decoder" / preset / final),
        Stage("upsampler", [py, "train_decoder.py", exp("upsampler"), *trainer],
              log_dir / "train_decoder" / f"{preset}_upsampler" / final),
        Stage("sample", [py, "sample.py", exp("sample"), *place,
                         f"hydra.run.dir={log_dir}/sample/{preset}"],
              log_dir / "sample" / preset / "run.json"),
        Stage("evaluate", [py, "evaluate.py", exp("evaluate"), *place,
                           f"hydra.run.dir={log_dir}/evaluate/{preset}"],
              log_dir / "evaluate" / preset / "results.json"),
    ]


def run_stage(stage: Stage) -> float:
    """Run one stage in its own process group; Ctrl-C becomes SIGTERM (checkpoint, clean exit)."""
    start = time.monotonic()
    proc = subprocess.Popen(stage.command, cwd=ROOT, start_new_session=True)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        print(f"\n[demo] stopping stage '{stage.name}' (SIGTERM: it saves its last checkpoint)")
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        print("[demo] stopped. Run the same command again to resume.")
        raise SystemExit(130) from None
    if code != 0:
        raise SystemExit(f"[demo] stage '{stage.name}' failed (exit {code}): "
                         f"{' '.join(stage.command)}")
    if not stage.done.exists():
        raise SystemExit(f"[demo] stage '{stage.name}' finished but did not write {stage.done}")
    return time.monotonic() - start


def summary(
    times: dict[str, float | None], eval_json: Path, sample_dir: Path, log_dir: Path,
    budget_minutes: float | None = None,
) -> str:
    """The table printed at the end: stage wall times, evaluation results, where things are."""
    lines = ["", "== unclip demo ==", f"{'stage':<12}{'wall time':>12}"]
    for name, seconds in times.items():
        lines.append(f"{name:<12}{'(reused)' if seconds is None else f'{seconds:8.1f} s':>12}")
    total = sum(s for s in times.values() if s)
    lines.append(f"{'total':<12}{total:8.1f} s")
    if budget_minutes:
        lines.append(f"{'budget':<12}{budget_minutes * 60:8.1f} s")
    if eval_json.is_file():
        results = json.loads(eval_json.read_text())
        lines.append("")
        lines.append(results.get("table", json.dumps(results, indent=2)))
    lines += ["", f"samples and grid: {sample_dir}", f"evaluation: {eval_json.parent}",
              f"checkpoints and W&B offline runs: {log_dir}/<stage>/<run>/"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="shapes_quick",
                        help="configs/experiment/<preset>/: smoke | shapes_quick | shapes_full")
    parser.add_argument("--fresh", action="store_true",
                        help="delete this preset's runs and embeddings first (data is kept)")
    parser.add_argument("--only", nargs="*", help="run only these stages")
    parser.add_argument("--minutes", type=float, default=None,
                        help="time budget of the whole run; the training stages get "
                             "trainer.max_time from what is left of it (default: the preset's, "
                             f"{PRESET_MINUTES}; 0: none, train to the configs' own limits)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA where torch sees a GPU, else CPU), cpu or cuda")
    args = parser.parse_args(argv)
    minutes = PRESET_MINUTES.get(args.preset) if args.minutes is None else args.minutes
    if minutes is not None and minutes < 0:
        parser.error(f"--minutes must be >= 0, got {minutes}")
    budget_s = minutes * 60 * (1 - MARGIN) if minutes else None

    root = Path(os.environ.get("UNCLIP_ROOT", ROOT))
    data_dir, log_dir = root / "data", root / "logs"
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    plan = stages(args.preset, data_dir, log_dir, device)
    print(f"[demo] device: {device}", flush=True)
    if args.fresh:
        shutil.rmtree(data_dir / "embeddings" / args.preset, ignore_errors=True)
        (data_dir / "clip" / f"{args.preset}_clip.pt").unlink(missing_ok=True)  # other presets'
        # CLIPs stay
        for task in ["train_clip", "train_prior", "train_decoder", "sample", "evaluate"]:
            for run in (log_dir / task).glob(f"{args.preset}*"):
                shutil.rmtree(run, ignore_errors=True)
    times: dict[str, float | None] = {}
    selected = [s for s in plan if not args.only or s.name in args.only]
    to_run = [s.name for s in selected if not s.done.exists()]
    if budget_s:
        print(f"[demo] time budget: {minutes:g} min ({budget_s / 60:.1f} planned); training "
              "stages get trainer.max_time from what is left", flush=True)
    start = time.monotonic()
    for stage in selected:
        if stage.name not in to_run:
            print(f"[demo] {stage.name}: reusing {stage.done}")
            times[stage.name] = None
            continue
        if budget_s and stage.name in TRAINING_STAGES:
            seconds = stage_seconds(stage.name, budget_s, time.monotonic() - start,
                                    to_run[to_run.index(stage.name):])
            stage = replace(stage, command=[*stage.command, max_time_override(seconds)])
        print(f"[demo] {stage.name}: {' '.join(stage.command)}", flush=True)
        times[stage.name] = run_stage(stage)
    print(summary(times, log_dir / "evaluate" / args.preset / "results.json",
                  log_dir / "sample" / args.preset, log_dir, minutes))


if __name__ == "__main__":
    main()
