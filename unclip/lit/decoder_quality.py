"""Quality of a decoder (and upsampler) on shapes, read by the domain CLIP.

For held-out single-object images the decoder samples from each image's true CLIP image
embedding; the domain CLIP's zero-shot reader (argmax over the 24 ``a {color} {shape}``
prompts, ``unclip.clip.zero_shot``) must find the source's colour+shape in the sample. Reported
next to the same figures for the real images at the decoder's resolution (the ceiling):

- ``accuracy``: fraction of samples whose colour+shape the reader gets right;
- ``cosine``: mean cosine between the CLIP embedding of each sample and its conditioning
  embedding;
- ``analytic_accuracy``: the same question put to the CLIP-free analytic reader
  (``unclip.eval.reader``): exactly one object, of the source's colour and shape;
- with an upsampler: the same at its resolution; ``agreement``, the fraction of samples whose
  reading is unchanged by upsampling; ``right_to_wrong`` and ``wrong_to_right``, the fractions
  whose reading upsampling breaks and mends; and the same three for the real images' readings
  at the two resolutions (what resolution alone changes).

    python -m unclip.lit.decoder_quality --decoder logs/.../final.ckpt \\
        [--upsampler logs/.../final.ckpt] --clip-model shapes-clip --clip-weights CLIP.pt \\
        --shards 'data/embeddings/shapes/test/*.tar' --n 256
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from unclip.clip.zero_shot import COLOR_SHAPE_PROMPTS
from unclip.data.shapes import single_caption
from unclip.eval.reader import read_batch
from unclip.lit.decoder import DecoderModule, load_decoder, resize


class ColorShapeReader:
    """Zero-shot colour+shape of images with a CLIP: the most similar ``a {color} {shape}``."""

    def __init__(self, clip: torch.nn.Module) -> None:
        self.clip = clip
        with torch.no_grad():
            self.text = F.normalize(clip.encode_text(list(COLOR_SHAPE_PROMPTS)).pooled.float(),
                                    dim=-1)

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """CLIP image embeddings (N, D) of images in [-1, 1], in batches."""
        return torch.cat([self.clip.encode_image(images[i : i + batch_size]).float()
                          for i in range(0, len(images), batch_size)])

    def read(self, image_emb: torch.Tensor) -> torch.Tensor:
        """Index into ``COLOR_SHAPE_PROMPTS`` of each embedding's reading (N,)."""
        image = F.normalize(image_emb.float(), dim=-1).to(self.text.device)
        return (image @ self.text.T).argmax(dim=1).cpu()


def answers(metas: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    """Index into ``COLOR_SHAPE_PROMPTS`` of each single-object sample's true colour+shape."""
    out = []
    for m in metas:
        (obj,) = m["objects"]
        out.append(COLOR_SHAPE_PROMPTS.index(single_caption(obj["color"], obj["shape"])))
    return torch.tensor(out)


def analytic_correct(images: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Whether the analytic reader (``unclip.eval.reader``) sees exactly one object, of the
    true colour+shape, in each image (a second, CLIP-free opinion)."""
    out = []
    for objects, answer in zip(read_batch(images.float().cpu()), truth.tolist(), strict=True):
        out.append(len(objects) == 1 and objects[0].color is not None
                   and objects[0].shape is not None
                   and single_caption(objects[0].color, objects[0].shape)
                   == COLOR_SHAPE_PROMPTS[answer])
    return torch.tensor(out)


def figures(
    reader: ColorShapeReader, images: torch.Tensor, cond: torch.Tensor, truth: torch.Tensor
) -> tuple[dict[str, float], torch.Tensor]:
    """``{accuracy, cosine, analytic_accuracy}`` of images against their conditioning
    embeddings, and the CLIP readings."""
    emb = reader.embed(images)
    reading = reader.read(emb)
    cosine = F.cosine_similarity(emb, cond.to(emb.device).float(), dim=-1)
    return {"accuracy": (reading == truth).float().mean().item(),
            "cosine": cosine.mean().item(),
            "analytic_accuracy": analytic_correct(images, truth).float().mean().item()}, reading


def reading_changes(before: torch.Tensor, after: torch.Tensor, truth: torch.Tensor
                    ) -> dict[str, float]:
    """``agreement`` of two readings (N,) of the same samples, and the fractions that go from
    right to wrong and from wrong to right against ``truth`` (their difference is the change in
    accuracy)."""
    right_before, right_after = before == truth, after == truth
    return {"agreement": (before == after).float().mean().item(),
            "right_to_wrong": (right_before & ~right_after).float().mean().item(),
            "wrong_to_right": (~right_before & right_after).float().mean().item()}


def base_inputs(decoder: DecoderModule, batch: Mapping[str, Any],
                rows: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """A base decoder's sampling inputs for the ``rows`` of an embedding batch (all rows when
    ``None``): ``image_emb`` and, for a decoder trained on captions too, the caption's
    ``text_tokens`` and ``text_mask``, as the pipeline passes them."""
    index = slice(None) if rows is None else list(rows)
    inputs = {"image_emb": batch["image_emb"][index].float()}
    if decoder.hparams["text_condition"]:
        missing = [k for k in ("text_tokens", "text_mask") if k not in batch]
        if missing:
            raise ValueError(f"this decoder is conditioned on captions (text_condition=true), "
                             f"but the embedding batch has no {', '.join(missing)}")
        inputs["text_tokens"] = batch["text_tokens"][index].float()
        inputs["text_mask"] = batch["text_mask"][index].bool()
    return inputs


@torch.no_grad()
def sample_in_chunks(decoder: DecoderModule, inputs: Mapping[str, torch.Tensor],
                     generator: torch.Generator, chunk: int = 64, **sample_options: Any
                     ) -> torch.Tensor:
    """``decoder.sample(**inputs)`` ``chunk`` rows at a time, one generator throughout (the same
    samples for the same seed and chunk). ``inputs`` are row-aligned keyword arguments of
    ``DecoderModule.sample``: ``base_inputs`` for a base decoder, ``{"low_res": (N, 3, h, w)}``
    for an upsampler."""
    lengths = {len(v) for v in inputs.values()}
    if len(lengths) != 1:
        raise ValueError(f"sampling inputs of different lengths: "
                         f"{ {k: len(v) for k, v in inputs.items()} }")
    (n,) = lengths
    return torch.cat([decoder.sample(**{k: v[i : i + chunk] for k, v in inputs.items()},
                                     generator=generator, **sample_options)
                      for i in range(0, n, chunk)])


@torch.no_grad()
def decoder_quality(
    decoder: DecoderModule,
    clip: torch.nn.Module,
    batch: Mapping[str, Any],
    upsampler: DecoderModule | None = None,
    seed: int = 0,
    chunk: int = 64,
    upsampler_options: Mapping[str, Any] | None = None,
    **sample_options: Any,
) -> dict[str, Any]:
    """Figures of the module docstring on the single-object rows of an embedding batch
    (``image``, ``image_emb``, ``meta``); ``sample_options`` go to the decoder's
    ``DecoderModule.sample``, ``upsampler_options`` to the upsampler's."""
    rows = [i for i, m in enumerate(batch["meta"]) if len(m["objects"]) == 1]
    if not rows:
        raise ValueError("the batch holds no single-object images")
    image, cond = batch["image"][rows].float(), batch["image_emb"][rows].float()
    truth = answers([batch["meta"][i] for i in rows])
    reader = ColorShapeReader(clip)
    gen = torch.Generator(device=decoder.device).manual_seed(seed)
    samples = sample_in_chunks(decoder, base_inputs(decoder, batch, rows), gen, chunk,
                               **sample_options)
    r = decoder.hparams["resolution"]
    out: dict[str, Any] = {"n": len(rows), "resolution": r, "sampling": {
        **decoder.hparams["sampling"], **sample_options}}
    out["samples"], low_reading = figures(reader, samples, cond, truth)
    out["real"], real_low_reading = figures(reader, resize(image, r), cond, truth)
    if upsampler is not None:
        up_options = dict(upsampler_options or {})
        up = sample_in_chunks(upsampler, {"low_res": samples}, gen, chunk, **up_options)
        ur = upsampler.hparams["resolution"]
        out["upsampler_sampling"] = {**upsampler.hparams["sampling"], **up_options}
        out["upsampled"], high_reading = figures(reader, up, cond, truth)
        out["upsampled"]["resolution"] = ur
        out["upsampled"].update(reading_changes(low_reading, high_reading, truth))
        out["real_upsampler_resolution"], real_high_reading = figures(
            reader, resize(image, ur), cond, truth)
        out["real_upsampler_resolution"].update(
            reading_changes(real_low_reading, real_high_reading, truth))
    return out


def load_test_batch(shards: str, n: int) -> dict[str, Any]:
    """The first ``n`` samples of embedding shards with images, as one batch."""
    from unclip.data.embeddings import EmbeddingDataModule

    data = EmbeddingDataModule(test_shards=shards, batch_size=n, num_workers=0,
                               with_images=True)
    data.setup("test")
    return next(iter(data.test_dataloader()))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: print the figures as JSON."""
    from unclip.clip import FrozenCLIP

    p = argparse.ArgumentParser(prog="python -m unclip.lit.decoder_quality",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--decoder", required=True, help="base decoder checkpoint")
    p.add_argument("--upsampler", help="upsampler checkpoint (optional)")
    p.add_argument("--clip-model", default="shapes-clip", help="open_clip model name")
    p.add_argument("--clip-weights", required=True, help="the domain CLIP's weights file")
    p.add_argument("--shards", default="data/embeddings/shapes/test/*.tar")
    p.add_argument("--n", type=int, default=256, help="held-out samples read (all objects)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--sampler", default="dpmpp_2m")
    p.add_argument("--guidance-scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--upsampler-low-pass-sigma", type=float, default=None,
                   help="the upsampler's low-pass consistency sigma in output px (0: off; "
                        "default: the checkpoint's sampling.low_pass_sigma)")
    p.add_argument("--upsampler-steps", type=int, default=None,
                   help="the upsampler's sampling steps (default: the checkpoint's sampling.steps)")
    p.add_argument("--upsampler-aug-level", type=float, default=None,
                   help="noise level of the upsampler's low-res input (default: the "
                        "checkpoint's low_res.sample_level)")
    args = p.parse_args(argv)
    torch.set_grad_enabled(False)
    clip = FrozenCLIP(args.clip_model, pretrained=args.clip_weights)
    decoder = load_decoder(args.decoder)
    upsampler = load_decoder(args.upsampler) if args.upsampler else None
    up_options: dict[str, float] = {}
    if args.upsampler_steps is not None:
        up_options["steps"] = args.upsampler_steps
    if args.upsampler_low_pass_sigma is not None:
        up_options["low_pass_sigma"] = args.upsampler_low_pass_sigma
    if args.upsampler_aug_level is not None:
        up_options["aug_level"] = args.upsampler_aug_level
    result = decoder_quality(decoder, clip, load_test_batch(args.shards, args.n), upsampler,
                             seed=args.seed, steps=args.steps, sampler=args.sampler,
                             guidance_scale=args.guidance_scale, upsampler_options=up_options)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
