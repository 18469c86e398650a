"""OmegaConf resolvers the configs use, registered on ``import unclip``.

- ``${unclip.sweep_job:}``: ``"-<job number>"`` inside a Hydra multirun, else ``""``; the W&B
  display name carries it so the jobs of a sweep are told apart on the dashboard.
- ``${unclip.rank_suffix:}``: ``".rank<N>"`` in the processes of rank N > 0 of a distributed
  run, else ``""``; the log file name carries it so ranks sharing a run directory do not
  write into one file.
"""

from __future__ import annotations

import os

from omegaconf import OmegaConf

# set by torchrun / Lightning's launchers (RANK, LOCAL_RANK) and by SLURM (SLURM_PROCID)
_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK")


def sweep_job() -> str:
    """``-<hydra.job.num>`` in a multirun, ``""`` in a single run or outside Hydra."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return ""
    cfg = HydraConfig.get()
    return f"-{cfg.job.num}" if cfg.mode == RunMode.MULTIRUN else ""


def rank_suffix() -> str:
    """``.rank<N>`` for a process of global rank N > 0, ``""`` for rank 0 or one process."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return "" if value == "0" else f".rank{value}"
    return ""


def register() -> None:
    """Register every resolver once (idempotent)."""
    for name, fn in (("unclip.sweep_job", sweep_job), ("unclip.rank_suffix", rank_suffix)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
