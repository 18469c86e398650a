"""Tokenise captions with an open_clip tokenizer: token ids, padding mask, truncation warning."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch

Tokenizer = Callable[..., torch.Tensor]


def real_token_mask(tokens: torch.Tensor, tokenizer: Tokenizer) -> torch.Tensor:
    """``(B, L)`` bool, True on real tokens (start, text and end-of-text), False on padding.

    open_clip's ``SimpleTokenizer`` pads with id 0, which is also the id of ``"!"``; so the mask
    is "up to and including the first end-of-text token" rather than "id != 0". Tokenizers
    without an end-of-text id (Hugging Face ones) are masked by their pad id.
    """
    eot = getattr(tokenizer, "eot_token_id", None)
    if eot is not None:
        is_eot = tokens == eot
        positions = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
        first_eot = torch.where(is_eot.any(1), is_eot.int().argmax(1), tokens.shape[1] - 1)
        return positions <= first_eot[:, None]
    hf = getattr(tokenizer, "tokenizer", None)
    pad_id = getattr(hf, "pad_token_id", None)
    if pad_id is None:
        raise TypeError(f"cannot find padding for tokenizer {type(tokenizer).__name__}")
    return tokens != pad_id


def tokenize(
    tokenizer: Tokenizer, captions: Sequence[str], context_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``(B, L)`` and real-token mask ``(B, L)``; warns once per call on truncation.

    Over-long captions are cut to ``context_length`` (open_clip keeps the end-of-text token
    last). Empty captions are valid: they encode as the empty prompt.
    """
    if isinstance(captions, str):
        raise TypeError("captions must be a list of strings, got a single str")
    bad = [c for c in captions if not isinstance(c, str)]
    if bad:
        raise TypeError(f"captions must be strings, got {type(bad[0]).__name__}: {bad[0]!r}")
    captions = list(captions)
    long = tokenizer(captions, context_length=4 * context_length)
    lengths = real_token_mask(long, tokenizer).sum(1)
    too_long = [c for c, n in zip(captions, lengths.tolist(), strict=True) if n > context_length]
    if too_long:
        warnings.warn(
            f"{len(too_long)} caption(s) exceed the CLIP context length of {context_length} "
            f"tokens and are truncated, e.g. {too_long[0][:120]!r}",
            UserWarning,
            stacklevel=3,
        )
    tokens = tokenizer(captions, context_length=context_length)
    return tokens, real_token_mask(tokens, tokenizer)
