"""The benchmark plumbing (benchmarks/_bench.py) and the proposed changes (benchmarks/patches.py):
fast checks, no timing asserts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import _bench
import patches
import pytest
import torch


def test_table_and_summary(capsys):
    runs = [{"items_per_s": v, "load1": 1.0, "peak_mb": 10.0 * v} for v in (1.0, 3.0, 2.0)]
    s = _bench.summarize(runs)
    assert (s["median"], s["min"], s["max"], s["peak_mb"]) == (2.0, 1.0, 3.0, 30.0)
    _bench.print_table("title", ["model", "img/s"], [["a", 12.345], ["bb", float("nan")]])
    out = capsys.readouterr().out
    assert "title" in out and "12.3" in out and "model" in out


def test_flop_count_and_peak():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert _bench.count_flops(lambda: a @ b) == 2 * 8 * 16 * 4
    peak = _bench.matmul_peak(torch.device("cpu"), torch.bfloat16, sizes=(64,), repeats=1)
    assert peak["flops_per_s"] > 0 and peak["size"] == 64


def test_kernel_profile_groups_ops():
    conv = torch.nn.Conv2d(3, 4, 3)
    prof = _bench.kernel_profile(lambda: conv(torch.randn(1, 3, 8, 8)).sum().backward())
    assert "convolution" in prof["groups"] and prof["total_ms"] > 0
    assert abs(sum(share for _, share in prof["groups"].values()) - 1) < 1e-6


def test_peak_memory_on_cpu():
    """In a fresh process (no freed pages to reuse), a touched 64 MiB block shows in the peak,
    and the peak still holds it after the block is freed."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(_bench.ROOT / 'benchmarks')!r})
        import torch, _bench
        mem = _bench.PeakMemory(torch.device("cpu"), baseline_mb=_bench.rss_mb())
        mem.start()
        block = torch.ones(64 * 2**20 // 4)
        during = mem.peak_mb()
        del block
        print(during, mem.peak_mb())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    during, after = map(float, out.stdout.split()[-2:])
    assert during > 32 and after > 32  # the kernel counters are exact to a few pages only


def test_worker_protocol(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(_bench.ROOT / 'benchmarks')!r})
        from _bench import serve
        def handle(cmd):
            if cmd.get("fail"):
                raise ValueError("asked to fail")
            return {{"items_per_s": 2.0 * cmd["x"], "peak_mb": 1.0}}
        print("library chatter on stdout is ignored")
        serve(handle, {{"name": "toy", "params": 3}})
    """))
    w = _bench.Worker("toy", sys.executable, script, [])
    try:
        assert w.info == {"name": "toy", "params": 3}
        (runs,) = _bench.interleave([(w, {"x": 2})], repeats=2, progress=False)
        assert [r["items_per_s"] for r in runs] == [4.0, 4.0]
        with pytest.raises(RuntimeError, match="asked to fail"):
            w.run(fail=True)
    finally:
        w.close()


def test_missing_peer_venv_is_a_note(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("UNCLIP_BENCH_VENV", str(tmp_path / "nowhere"))
    assert _bench.bench_python() is None
    assert "make bench-env" in capsys.readouterr().err


def test_json_results(tmp_path):
    _bench.write_json(tmp_path / "out" / "r.json", {"a": 1})
    assert json.loads((tmp_path / "out" / "r.json").read_text()) == {"a": 1}


# --------------------------------------------------------------------- proposed changes
# (the attention, mask and sync-free patches were applied for real: tests/perf/test_attention.py,
# test_syncs.py, tests/decoder/test_unet.py)
def test_patch_applies_and_is_undone(monkeypatch):
    init = torch.optim.AdamW.__init__
    with monkeypatch.context() as m:
        patches.apply("foreach_adamw", m.setattr)
        opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])
        assert opt.defaults["foreach"] is True
    assert torch.optim.AdamW.__init__ is init


def test_unknown_patch_lists_choices():
    with pytest.raises(ValueError, match="foreach_adamw"):
        patches.apply("nope")
