"""Quality per network evaluation of every sampler on a toy whose exact denoiser is known.

Data: the 2-D, 3-component Gaussian mixture ``unclip.diffusion.toy.toy_mixture``. Each sampler is
driven by the exact ``E[x0 | x_t]``, so the only error left is the sampler's discretisation (plus
Monte-Carlo noise, shown in the "exact draws" row). Printed per sampler, spacing and step count:

- W2: 2-Wasserstein distance between the sampled and the exact marginal of each dimension
  (empirical quantiles against the exact quantile function), averaged over dimensions;
- weights: largest error of the mixture weights (samples assigned to their likeliest component).

Both carry Monte-Carlo noise (W2 mostly through the weights: a 0.3 % shift of mass between modes
moves the quantiles in the gap between them); the "exact draws" row gives its level.

    python benchmarks/sampler_accuracy.py                       # the full table (~2-5 min)
    python benchmarks/sampler_accuracy.py --n 5000 --steps 5 10  # a quick look
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from unclip.diffusion import SAMPLERS, SPACINGS, get_sampler, make_schedule, make_timesteps, nfe
from unclip.diffusion.toy import GaussianMixture, toy_mixture

FLOOR_DRAWS = 5


def exact_quantiles(mix: GaussianMixture, probs: torch.Tensor) -> torch.Tensor:
    """Quantiles (n, D) of each marginal of ``mix`` at ``probs`` (n,), by bisection on the CDF."""
    lo = (mix.means - 10 * mix.stds).min(dim=0).values.expand(len(probs), -1).clone()
    hi = (mix.means + 10 * mix.stds).max(dim=0).values.expand(len(probs), -1).clone()
    std_normal = torch.distributions.Normal(0.0, 1.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        cdf = (mix.weights * std_normal.cdf((mid[:, None, :] - mix.means) / mix.stds).permute(
            0, 2, 1)).sum(dim=-1)
        below = cdf < probs[:, None]
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return (lo + hi) / 2


def w2_per_dim(x: torch.Tensor, quantiles: torch.Tensor) -> float:
    """Mean over dims of the 1-D 2-Wasserstein distance between samples and the exact marginal."""
    return ((x.sort(dim=0).values - quantiles) ** 2).mean(dim=0).sqrt().mean().item()


def weight_error(mix: GaussianMixture, x: torch.Tensor) -> float:
    """Largest absolute error of the mixture weights estimated by classifying ``x``."""
    counts = torch.bincount(mix.classify(x), minlength=len(mix.weights)).double()
    return (counts / len(x) - mix.weights).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="samples per run")
    parser.add_argument("--schedule", default="cosine", choices=["cosine", "linear"])
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 50, 100, 1000])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    parser.add_argument("--spacings", nargs="+", default=list(SPACINGS), choices=list(SPACINGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    mix = toy_mixture()
    schedule = make_schedule(args.schedule, args.timesteps)
    denoiser = mix.denoiser(schedule)
    n = args.n
    quantiles = exact_quantiles(mix, (torch.arange(n, dtype=torch.float64) + 0.5) / n)

    results: dict[str, dict[int, tuple[float, float]]] = {}
    floors = []
    for k in range(FLOOR_DRAWS):
        exact, _ = mix.sample(n, torch.Generator().manual_seed(args.seed + 1 + k))
        floors.append((w2_per_dim(exact, quantiles), weight_error(mix, exact)))
    floor = tuple(sum(f[i] for f in floors) / FLOOR_DRAWS for i in range(2))
    start = time.time()
    for name in args.samplers:
        for spacing in args.spacings:
            row = results[f"{name} / {spacing}"] = {}
            for steps in args.steps:
                gen = torch.Generator().manual_seed(args.seed)
                x_T = torch.randn(n, mix.dim, generator=gen, dtype=torch.float64)
                ts = make_timesteps(schedule, steps, spacing)
                x = get_sampler(name)(denoiser, x_T, ts, schedule=schedule, generator=gen)
                row[steps] = (w2_per_dim(x, quantiles), weight_error(mix, x))

    print(f"# toy_mixture (2-D, 3 components), schedule={args.schedule} T={args.timesteps}, "
          f"n={n}, seed={args.seed}, exact denoiser; {time.time() - start:.0f}s")
    print("# NFE = steps, except heun: 2 * steps - 1 (" + ", ".join(
        f"{s}->{nfe('heun', s)}" for s in args.steps) + ")")
    for k, metric in enumerate(["W2 per dim (mean over dims)", "max |mixture weight error|"]):
        print(f"\n{metric}")
        header = f"{'sampler / spacing':<24}" + "".join(f"{s:>9}" for s in args.steps)
        print(header)
        print("-" * len(header))
        for label, row in results.items():
            print(f"{label:<24}" + "".join(f"{row[s][k]:>9.4f}" for s in args.steps))
        print(f"{'exact draws (MC floor)':<24}" + f"{floor[k]:>9.4f}" * len(args.steps))
    print(f"\n# MC floor: the metric for exact draws of the same size (mean of {FLOOR_DRAWS}); "
          "differences below it are noise")
    se = math.sqrt(0.5 * 0.5 / n)
    print(f"# weight-error Monte-Carlo scale: sqrt(w(1-w)/n) <= {se:.4f}")


if __name__ == "__main__":
    main()
