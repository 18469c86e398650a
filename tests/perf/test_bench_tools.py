"""The benchmark plumbing (benchmarks/_bench.py) and the proposed changes (benchmarks/patches.py):
fast checks, no timing asserts."""

from __future__ import annotations

import json
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
    mem = _bench.PeakMemory(torch.device("cpu"), baseline_mb=_bench.rss_mb())
    mem.start()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    assert mem.peak_mb() > 32
    del block


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
def nonzero_unet(**kw):
    from unclip.models.unet import UNet

    torch.manual_seed(0)
    net = UNet(resolution=16, model_channels=16, channel_mult=[1, 2], num_blocks=1,
               attn_resolutions=[8], head_channels=16, image_emb_dim=8, groups=8, **kw)
    with torch.no_grad():
        for p in net.parameters():
            if bool((p == 0).all()):
                p.normal_(std=0.05)
    return net.eval()


@pytest.mark.parametrize("name", ["attention_math_cpu", "no_image_only_mask", "math_and_mask"])
@pytest.mark.parametrize("text", [False, True])
def test_decoder_attention_patches_keep_outputs(monkeypatch, name, text):
    net = nonzero_unet(text_token_dim=6 if text else None)
    x, t, emb = torch.randn(3, 3, 16, 16), torch.rand(3), torch.randn(3, 8)
    cond = {"image_emb": emb}
    if text:
        cond |= {"text_tokens": torch.randn(3, 5, 6),
                 "text_mask": torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]],
                                           dtype=torch.bool)}
    drop = torch.tensor([False, True, False])
    with torch.no_grad():
        ref = net(x, t, cond_drop=drop, **cond)
        patches.apply(name, monkeypatch.setattr)
        out = net(x, t, cond_drop=drop, **cond)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    x.requires_grad_(True)
    net(x, t, cond_drop=drop, **cond).square().sum().backward()
    assert torch.isfinite(x.grad).all()


def test_prior_attention_patch_keeps_outputs(monkeypatch):
    from unclip.models.prior_transformer import PriorTransformer

    torch.manual_seed(0)
    net = PriorTransformer(dim=16, token_dim=12, width=32, depth=2, heads=4,
                           text_context=6).eval()
    args = (torch.randn(4, 16), torch.rand(4))
    cond = {"text_emb": torch.randn(4, 16), "text_tokens": torch.randn(4, 6, 12),
            "text_mask": torch.arange(6)[None] < torch.tensor([[2], [6], [3], [1]]),
            "cond_drop": torch.tensor([False, False, True, False])}
    with torch.no_grad():
        ref = net(*args, **cond)
        patches.apply("prior_attention_math_cpu", monkeypatch.setattr)
        out = net(*args, **cond)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_unknown_patch_lists_choices():
    with pytest.raises(ValueError, match="attention_math_cpu"):
        patches.apply("nope")
