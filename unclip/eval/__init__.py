"""Evaluation: the compositional benchmark on the shapes grammar and distribution metrics.

- ``reader``: reads colour, shape, size and position of each object of a shapes image.
- ``prompts``: the fixed, seeded benchmark prompt set, six GenEval-style categories.
- ``verdict``: one image's objects against its prompt's spec, with a reason for failures.
- ``compositional``: ``score(images, prompts)``, the ``ceiling`` (true renders) and ``floor``
  (shuffled prompts).
- ``metrics``: FD_CLIP and KID (torchmetrics, frozen CLIP features), CMMD, Inception FID with
  local weights; ``clip_score``: CLIP score; ``cmmd``: the CMMD estimator.
- ``report``: results JSON, sweep plots (quality vs NFE / guidance), verdict grids.
"""
