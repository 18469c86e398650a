"""Shared plumbing of the benchmarks: timing, memory, workers, peers, tables.

Only the standard library and torch are imported here: the peer scripts under
``benchmarks/peers/`` import this module from the peers' own venv (``.venv-bench``), which does
not have ``unclip``.

Every measured model runs in its own *worker* process (ours under this interpreter, the peers
under ``.venv-bench/bin/python``), so each has a clean peak-memory reading, and the
orchestrating script interleaves the measurements: round 1 runs every configuration once, round
2 again (in rotated order), and so on, so that a burst of load on a shared machine hits all of
them alike. A worker reads one JSON command per line on stdin and answers one line on stdout
prefixed by :data:`MARK`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".venv-bench"
MARK = "BENCH_JSON "
PRECISIONS = ("fp32", "bf16")


# ------------------------------------------------------------------------------- machine
def loadavg() -> str:
    """The 1/5/15-minute load averages and the CPU count, e.g. ``"2.10 1.95 1.80 (2 cpus)"``."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cpus)"


def load1() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def device_name(device: torch.device) -> str:
    """A short description of ``device`` for the table headers."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = "cpu"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name}, {torch.get_num_threads()} threads"


def setup_device(name: str) -> torch.device:
    """The torch device for ``--device`` (``auto``: CUDA when present), with TF32 enabled."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return device


def sync(device: torch.device) -> None:
    """Wait for queued device work (a no-op on CPU), so a clock reading means something."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision="bf16"``; nothing for ``"fp32"``."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return contextlib.nullcontext()


# ------------------------------------------------------------------------------- memory
def _proc_status_kb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return float("nan")


def rss_mb() -> float:
    """Resident set size of this process in MiB (CPU memory)."""
    return _proc_status_kb("VmRSS") / 1024


class PeakMemory:
    """Peak memory over a window: CUDA allocator peak, or the process's peak RSS on CPU.

    On CPU the kernel's high-water mark (``VmHWM``) is reset at the start of the window through
    ``/proc/self/clear_refs`` (Linux >= 4.0); the reported figure is the peak RSS inside the
    window minus ``baseline_mb`` (the RSS before the model was built), i.e. parameters,
    gradients, optimizer state, activations and allocator caching of this one model.
    """

    def __init__(self, device: torch.device, baseline_mb: float) -> None:
        self.device, self.baseline_mb = device, baseline_mb

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        # the kernel's counters may lag the current RSS by a few pages: the peak is at least it
        high = max(_proc_status_kb("VmHWM"), _proc_status_kb("VmRSS")) / 1024
        return high - self.baseline_mb


# ------------------------------------------------------------------------------- workers
def worker_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every worker takes: ``--device``, ``--threads``, ``--serve``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--serve", action="store_true",
                   help="read JSON commands on stdin, answer one JSON line each (orchestrated)")
    # one-shot mode (without --serve): one measurement, printed as one JSON line
    p.add_argument("--op", default="train", help="what to measure once (train, sample, ...)")
    p.add_argument("--precision", default="bf16", choices=PRECISIONS)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    return p


def run_worker(args: argparse.Namespace, handle: Callable[[dict[str, Any]], dict[str, Any]],
               info: dict[str, Any]) -> None:
    """``--serve``: the worker loop; otherwise one ``--op`` measurement printed as JSON."""
    if args.serve:
        serve(handle, info)
        return
    cmd = {"op": args.op, "precision": args.precision, "channels_last": args.channels_last,
           "steps": args.steps, "warmup": args.warmup}
    print(json.dumps({**info, **cmd, **handle(cmd), "load1": load1()}))


def measure(step: Callable[[], Any], device: torch.device, memory: PeakMemory, steps: int,
            warmup: int, items: int) -> dict[str, Any]:
    """Time ``step`` (``items`` images or rows per call): throughput, median step, peak memory."""
    for _ in range(warmup):
        step()
    sync(device)
    memory.start()
    times = time_steps(step, device, steps, 0)
    return {"items_per_s": items * len(times) / sum(times),
            "step_ms": 1000 * statistics.median(times), "peak_mb": memory.peak_mb()}


def serve(handle: Callable[[dict[str, Any]], dict[str, Any]], info: dict[str, Any]) -> None:
    """Worker loop: print ``info``, then answer each stdin JSON command with ``handle(cmd)``."""
    print(MARK + json.dumps(info), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break
        try:
            out = handle(cmd)
        except Exception as err:  # noqa: BLE001 - reported to the orchestrator, which raises
            out = {"error": f"{type(err).__name__}: {err}"}
        print(MARK + json.dumps(out), flush=True)


class Worker:
    """A benchmark worker process (``python script --serve ...``) and its JSON protocol."""

    def __init__(self, name: str, python: str | Path, script: str | Path, args: Sequence[str],
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [str(python), str(script), "--serve", *map(str, args)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(MARK):
                out = json.loads(line[len(MARK):])
                if "error" in out:
                    raise RuntimeError(f"worker {self.name}: {out['error']}")
                return out
        self.stderr.seek(0)
        tail = self.stderr.read()[-4000:]
        raise RuntimeError(f"worker {self.name} exited (rc={self.proc.wait()}):\n{tail}")

    def run(self, **cmd: Any) -> dict[str, Any]:
        """Send one command; return the worker's answer (raises on a worker error)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.flush()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.stderr.close()


def bench_python() -> Path | None:
    """The peers' interpreter (``.venv-bench/bin/python``; ``UNCLIP_BENCH_VENV`` overrides the
    venv), or None with a note on stderr."""
    python = Path(os.environ.get("UNCLIP_BENCH_VENV", BENCH_VENV)) / "bin" / "python"
    if python.is_file():
        return python
    print(f"NOTE: {python} not found: peers (dalle2-pytorch, diffusers) are skipped. "
          "Run `make bench-env` to install them; showing this project's figures only.",
          file=sys.stderr)
    return None


def worker_env(threads: int) -> dict[str, str]:
    """Environment for workers: the same thread count for every process."""
    return {"OMP_NUM_THREADS": str(threads)} if threads else {}


def apply_threads(threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)


def interleave(jobs: Sequence[tuple[Worker, dict[str, Any]]], repeats: int,
               progress: bool = True) -> list[list[dict[str, Any]]]:
    """Run every ``(worker, command)`` once per round, ``repeats`` rounds, rotating the order.

    Returns, per job, the list of its answers (each tagged with the 1-min load average).
    """
    results: list[list[dict[str, Any]]] = [[] for _ in jobs]
    for r in range(repeats):
        order = list(range(len(jobs)))
        order = order[r % len(order):] + order[:r % len(order)]
        for j in order:
            worker, cmd = jobs[j]
            out = worker.run(**cmd)
            out["load1"] = load1()
            results[j].append(out)
            if progress:
                rate = out.get("items_per_s")
                print(f"  round {r + 1}/{repeats} {worker.name} {cmd.get('precision', '')}"
                      f"{' ' + cmd['label'] if 'label' in cmd else ''}: "
                      f"{rate:.2f}/s, load {out['load1']:.2f}" if rate is not None
                      else f"  round {r + 1}/{repeats} {worker.name}: done",
                      file=sys.stderr, flush=True)
    return results


# ------------------------------------------------------------------------------- timing
def time_steps(step: Callable[[], Any], device: torch.device, steps: int,
               warmup: int) -> list[float]:
    """Per-step wall times (s) of ``steps`` calls of ``step`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def summarize(runs: Iterable[dict[str, Any]], key: str = "items_per_s") -> dict[str, float]:
    """Median, min and max of ``key`` over repeated runs; max peak memory; mean load."""
    runs = list(runs)
    values = [r[key] for r in runs]
    out = {"median": statistics.median(values), "min": min(values), "max": max(values),
           "load1": statistics.mean(r["load1"] for r in runs)}
    peaks = [r["peak_mb"] for r in runs if r.get("peak_mb") is not None]
    out["peak_mb"] = max(peaks) if peaks else float("nan")
    return out


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """An aligned plain-text table."""
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    line = "  ".join("-" * w for w in widths)
    print(line)
    for k, row in enumerate(cells):
        print("  ".join(c.rjust(w) if k and _numeric(c) else c.ljust(w)
                        for c, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            print(line)
    print(line)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _numeric(text: str) -> bool:
    try:
        float(text.replace("x", "").replace("%", ""))
    except ValueError:
        return False
    return True


def common_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Orchestrator arguments shared by the benchmark scripts."""
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (CUDA when present)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    p.add_argument("--threads", type=int, default=0, help="torch threads per worker (0: default)")
    p.add_argument("--no-peers", action="store_true", help="measure this project only")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 round (a smoke test)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2))


def header(title: str, device: torch.device) -> None:
    print(f"# {title}")
    print(f"# device: {device_name(device)}; torch {torch.__version__}; load average "
          f"{loadavg()}")


def param_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------- FLOPs, profile
def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the matmuls, convolutions and attention ``fn`` runs (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.bfloat16,
                sizes: Sequence[int] = (1024, 2048, 4096), repeats: int = 5) -> dict[str, Any]:
    """The best dense matmul rate (FLOP/s) over square sizes: this machine's measured peak."""
    rates = {}
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        times = time_steps(lambda a=a, b=b: torch.mm(a, b), device, repeats, warmup=2)
        rates[n] = 2 * n**3 / min(times)
    best = max(rates, key=rates.get)
    return {"flops_per_s": rates[best], "size": best, "by_size": rates,
            "dtype": str(dtype).replace("torch.", "")}


KERNEL_GROUPS = (  # (group, substrings of aten op names), first match wins
    ("convolution", ("conv",)),
    ("attention (sdpa)", ("scaled_dot_product", "_efficient_attention", "_flash_attention")),
    ("matmul/linear", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul")),
    ("normalization", ("norm",)),
    ("dtype casts/copies", ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::contiguous")),
    ("optimizer", ("_foreach", "lerp", "addcdiv", "addcmul", "aten::sqrt")),
)


def kernel_profile(fn: Callable[[], Any], top: int = 12) -> dict[str, Any]:
    """Self time of the ops ``fn`` runs, grouped (convolution, attention, ...) and the top ops."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    use_cuda = torch.cuda.is_available()

    def self_time(e: Any) -> float:
        t = getattr(e, "self_device_time_total", 0) if use_cuda else e.self_cpu_time_total
        return float(t) / 1e3  # ms

    total = sum(self_time(e) for e in events) or 1.0
    groups: dict[str, float] = {}
    for e in events:
        name = next((g for g, keys in KERNEL_GROUPS if any(k in e.key for k in keys)),
                    "other elementwise")
        groups[name] = groups.get(name, 0.0) + self_time(e)
    ops = sorted(events, key=self_time, reverse=True)[:top]
    return {"total_ms": total,
            "groups": {g: (ms, ms / total) for g, ms in sorted(groups.items(),
                                                            key=lambda kv: -kv[1])},
            "top": [(e.key, e.count, self_time(e), self_time(e) / total) for e in ops]}


def print_profile(title: str, prof: dict[str, Any]) -> None:
    print_table(f"{title}: op self time by group (total {prof['total_ms']:.0f} ms)",
                ["group", "ms", "share"],
                [[g, ms, f"{share:.0%}"] for g, (ms, share) in prof["groups"].items()])
    print_table(f"{title}: top ops", ["op", "calls", "ms", "share"],
                [[k, n, ms, f"{share:.0%}"] for k, n, ms, share in prof["top"]])


def train_op(cmd: dict[str, Any], step: Callable[[], Any], device: torch.device,
             memory: PeakMemory, items: int) -> dict[str, Any]:
    """A worker's training command: ``train`` (timing), ``flops`` (per step) or ``profile``."""
    op = cmd.get("op", "train")
    if op == "flops":
        return {"flops": count_flops(step), "items": items}
    if op == "profile":
        for _ in range(max(1, cmd.get("warmup", 1))):
            step()
        return {"profile": kernel_profile(step)}
    if op != "train":
        raise ValueError(f"unknown op {op!r}")
    return measure(step, device, memory, cmd["steps"], cmd["warmup"], items)


def goal_rows(best: dict[str, float], plain: str) -> list[tuple[str, list[str]]]:
    """The goal lines to print: the code as it is (``plain``), and with every variant
    (``--compile``, ``--patch``) when some were measured."""
    variants = [k for k in best if k.startswith(plain) and k != plain]
    rows = [("ours as is", [plain])] if plain in best else []
    if variants:
        rows.append(("ours incl. " + ", ".join(k[len(plain):].strip() for k in variants),
                     [*([plain] if plain in best else []), *variants]))
    return rows
