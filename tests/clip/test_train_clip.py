"""train_clip through Hydra: a few CPU steps of the tiny CLIP on real shapes shards."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch

from unclip.clip import FrozenCLIP, preprocess_images
from unclip.lit.clip import CLIPModule, vision_positional_embedding
from unclip.training import train


def tiny_overrides(shapes: Path, export: Path) -> list[str]:
    return [
        f"data.train_shards='{shapes}/train/*.tar'",
        f"data.val_shards='{shapes}/val/*.tar'",
        "data.test_shards=null",
        "data.batch_size=16",
        "data.num_workers=0",
        "data.persistent_workers=false",
        "data.shuffle_buffer=16",
        "clip.model_name=tiny-clip",
        f"clip.export_path={export}",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "+trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "callbacks.model_checkpoint.every_n_train_steps=2",
        "callbacks.progress_bar.refresh_rate=0",
        "logger=csv",
    ]


def test_train_clip_checkpoint_loads_in_open_clip_and_frozen_clip(
    hydra_cfg, shapes_dir: Path, tmp_path: Path
) -> None:
    export = tmp_path / "released" / "clip.pt"
    cfg = hydra_cfg("train_clip", tiny_overrides(shapes_dir, export))
    metrics = train(cfg, "clip")
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    for task in ("color_shape", "position", "relation"):
        assert 0.0 <= metrics[f"val/zero_shot/{task}"] <= 1.0
    assert "val/loss" in metrics

    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)  # plain containers only
    assert saved["hyper_parameters"]["model_name"] == "tiny-clip"
    assert saved["global_step"] == 2

    # the released file and the Lightning checkpoint both load through open_clip itself
    released, _, preprocess = open_clip.create_model_and_transforms(
        "tiny-clip", pretrained=str(export))
    from_ckpt = open_clip.create_model("tiny-clip", pretrained=str(ckpt))
    trained = CLIPModule.load_from_checkpoint(ckpt, weights_only=True)
    assert trained.hparams.model_cfg == saved["hyper_parameters"]["model_cfg"]
    for name, value in trained.module.state_dict().items():
        torch.testing.assert_close(released.state_dict()[name], value)
        torch.testing.assert_close(from_ckpt.state_dict()[name], value)

    clip = FrozenCLIP("tiny-clip", pretrained=str(export))
    assert clip.identity["pretrained"] == "file"
    tokens, _ = clip.tokenize(["a red circle"])
    torch.testing.assert_close(clip.encode_text(["a red circle"]).pooled,
                               released.eval().encode_text(tokens))


def test_training_moves_weights_and_clamps_temperature(shapes_dir: Path) -> None:
    """One optimisation step through the module's own hooks."""
    torch.manual_seed(0)
    module = CLIPModule(model_name="tiny-clip", lr=1e-2, max_logit_scale=10.0,
                        mirror_fraction=0.25)
    import webdataset as wds

    samples = list(wds.WebDataset(str(shapes_dir / "train" / "shapes-000000.tar"),
                                  shardshuffle=False).decode("torchrgb"))
    batch = {"image": torch.stack([s["png"] * 2 - 1 for s in samples]),
             "caption": [s["txt"] for s in samples], "meta": [s["json"] for s in samples]}
    optimizer = module.configure_optimizers()
    before = {k: v.clone() for k, v in module.module.state_dict().items()}
    loss = module.training_step(batch, 0)
    assert loss.ndim == 0 and loss > 0
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        module.module.logit_scale.fill_(5.0)
    module.on_train_batch_end(None, batch, 0)
    assert module.module.logit_scale.item() == pytest.approx(torch.log(torch.tensor(10.0)))
    moved = [k for k, v in module.module.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("visual.") for k in moved) and any(k.startswith("transformer.")
                                                              for k in moved)


def test_weight_decay_groups() -> None:
    module = CLIPModule(model_name="tiny-clip", weight_decay=0.2)
    optimizer = module.configure_optimizers()
    no_decay, decay = optimizer.param_groups
    names = {id(p): n for n, p in module.module.named_parameters()}
    assert {names[id(p)] for p in no_decay["params"]} >= {
        "logit_scale", "ln_final.weight", "ln_final.bias", "visual.class_embedding"}
    assert {names[id(p)] for p in decay["params"]} >= {"visual.conv1.weight", "text_projection"}
    assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.2
    assert no_decay["weight_decay"] == 0.0
    assert len(no_decay["params"]) + len(decay["params"]) == len(names)


def test_checkpoint_config_registers_an_unknown_name(tmp_path: Path) -> None:
    """A checkpoint of a custom architecture rebuilds where its JSON was never registered."""
    cfg = open_clip.get_model_config("tiny-clip")
    cfg["embed_dim"] = 24
    module = CLIPModule(model_name="ckpt-only-clip", model_cfg=cfg)
    assert module.module.text_projection.shape[-1] == 24
    with pytest.raises(ValueError, match="registered with another config"):
        CLIPModule(model_name="tiny-clip", model_cfg=cfg)


def test_unknown_architecture_is_named() -> None:
    with pytest.raises(ValueError, match="unknown open_clip model 'tiny-clipp'"):
        CLIPModule(model_name="tiny-clipp")


def test_clip_lr_is_a_root_level_override(hydra_cfg) -> None:
    cfg = hydra_cfg("train_clip", ["clip.lr=5e-4"])
    assert cfg.clip.lr == 5e-4 and cfg.clip.scheduler.max_lr == 5e-4
    assert cfg.clip._target_ == "unclip.lit.clip.CLIPModule"


TINY_RESNET = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "head_width": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                 "layers": 1},
}


def test_batch_norm_recalibrated_from_recent_batches() -> None:
    """Running means become the kept batches' means at the current weights."""
    torch.manual_seed(0)
    module = CLIPModule(model_name="tiny-resnet-clip", model_cfg=TINY_RESNET,
                        bn_recalibration_batches=2)
    captions = ["a red circle on the left", "a blue square"] * 4
    images = [torch.rand(8, 3, 32, 32) * 2 - 1 + k for k in range(3)]  # shifted batches
    for x in images:
        module.training_step({"image": x, "caption": captions}, 0)
    assert len(module._recent_inputs) == 2  # only the last two batches are kept
    visual = module.module.visual
    pixels = torch.cat([preprocess_images(x, module.preprocess_cfg) for x in images[1:]])
    with torch.no_grad():
        expected = visual.conv1(pixels).mean((0, 2, 3))  # bn1 normalises conv1's output
    assert not torch.allclose(visual.bn1.running_mean, expected, atol=1e-3)
    module.recalibrate_batch_norm()
    torch.testing.assert_close(visual.bn1.running_mean, expected, atol=1e-5, rtol=1e-4)


def test_no_batch_norm_keeps_no_batches() -> None:
    module = CLIPModule(model_name="tiny-clip", bn_recalibration_batches=8)
    module.training_step({"image": torch.rand(4, 3, 32, 32) * 2 - 1,
                          "caption": ["a", "b", "c", "d"]}, 0)
    assert len(module._recent_inputs) == 0


@pytest.mark.parametrize("name,cfg", [("tiny-clip", None), ("tiny-resnet-clip", TINY_RESNET)])
def test_position_init_std_rescales_the_vision_positions(name: str, cfg: dict | None) -> None:
    """ViT tokens or the ResNet attention pool: the positional embedding gets the asked std."""
    torch.manual_seed(0)
    default = CLIPModule(model_name=name, model_cfg=cfg)
    scaled = CLIPModule(model_name=name, model_cfg=cfg, position_init_std=1.0)
    before = vision_positional_embedding(default.module).std().item()
    after = vision_positional_embedding(scaled.module).std().item()
    assert before < 0.5 and 0.8 < after < 1.2
    assert vision_positional_embedding(scaled.module).requires_grad


def test_position_init_std_leaves_pretrained_weights_alone(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = CLIPModule(model_name="tiny-clip")
    weights = source.export(tmp_path / "tiny.pt")
    loaded = CLIPModule(model_name="tiny-clip", pretrained=str(weights), position_init_std=1.0)
    assert torch.equal(vision_positional_embedding(loaded.module),
                       vision_positional_embedding(source.module))


def test_channels_last_and_math_attention_keep_the_numbers() -> None:
    """The fast layout and attention kernel change the speed of a step, not its loss or grads."""
    captions = ["a red circle on the left", "a blue square to the left of a red circle"] * 4
    images = torch.rand(8, 3, 32, 32) * 2 - 1
    losses, grads = [], []
    for fast in (False, True):
        torch.manual_seed(0)
        module = CLIPModule(model_name="tiny-resnet-clip", model_cfg=TINY_RESNET,
                            hard_negatives=1, color_swaps=True, channels_last=fast,
                            attention_backend="math" if fast else None)
        conv = module.module.visual.conv1.weight
        assert conv.is_contiguous(memory_format=torch.channels_last) == fast
        assert module._pixels(images).is_contiguous(memory_format=torch.channels_last) == fast
        loss = module.training_step({"image": images, "caption": captions}, 0)
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in module.module.parameters()
                                if p.grad is not None]))
    torch.testing.assert_close(losses[0], losses[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize(("backend", "flash"), [("auto", False), ("math", False), (None, True)])
def test_attention_backend_on_the_cpu(backend: str | None, flash: bool) -> None:
    """``auto`` and ``math`` turn the flash kernel off for the step; null leaves PyTorch's."""
    module = CLIPModule(model_name="tiny-clip", attention_backend=backend)
    with module._attention():
        assert torch.backends.cuda.flash_sdp_enabled() == flash
        assert torch.backends.cuda.math_sdp_enabled()
    assert torch.backends.cuda.flash_sdp_enabled()


def test_unknown_attention_backend_is_named() -> None:
    with pytest.raises(ValueError, match="clip.attention_backend"):
        CLIPModule(model_name="tiny-clip", attention_backend="flash")
