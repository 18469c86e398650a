"""Check a composed Hydra config at start-up: keys, types, value ranges, output directories.

Every node with a ``_target_`` is a schema by construction: the callable's signature says which
keys exist, and its annotations say their types (``Literal[...]`` gives the allowed values).
Numbers anywhere in the config are checked against :data:`RANGES` (a learning rate > 0, a
probability in [0, 1], a batch size >= 1, ...), and every output directory must be writable.
This runs at start-up, before any data is read or model built, so a misspelled or unknown key, a
wrong type, a value out of range or an unwritable output directory fails at once with the key's
full path and the allowed names, values or range.
"""

from __future__ import annotations

import difflib
import inspect
import os
import types
import typing
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from unclip.config_ranges import RANGES, Range

HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


class ConfigError(ValueError):
    """A config value that cannot work, with the key's path and what is allowed."""


def _iter_target_nodes(node: Any, path: str) -> Iterator[tuple[str, DictConfig]]:
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for key in node.keys():
            if key == "hydra":
                continue
            if OmegaConf.is_interpolation(node, key):
                continue  # checked where it is defined
            yield from _iter_target_nodes(node[key], f"{path}.{key}" if path else str(key))
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            yield from _iter_target_nodes(item, f"{path}[{i}]")


def _signature_of(target: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        return None


def _resolved_hints(target: Callable) -> dict[str, Any]:
    func = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: skip type checks, keep key checks
        return {}


def _type_ok(value: Any, hint: Any) -> tuple[bool, str]:
    """Whether a plain config value can be passed where ``hint`` is expected."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True, ""
    origin = get_origin(hint)
    if origin is Literal:
        allowed = get_args(hint)
        return value in allowed, f"one of {list(allowed)}"
    if origin in (Union, types.UnionType):
        results = [_type_ok(value, arg) for arg in get_args(hint)]
        return any(ok for ok, _ in results), " or ".join(d for _, d in results if d)
    if hint is type(None) or value is None:
        return value is None and hint is type(None), "None" if hint is type(None) else "a value"
    if isinstance(value, (DictConfig, dict)) and "_target_" in value:
        return True, ""  # an object built by Hydra: checked as its own node
    if hint is bool:
        return isinstance(value, bool), "a bool"
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), "an int"
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    if hint is str:
        return isinstance(value, str), "a string"
    return True, ""  # containers, tensors, modules...: leave to the callable


def _hint_name(hint: Any) -> str:
    if hint is inspect.Parameter.empty:
        return "any type"
    return hint.__name__ if isinstance(hint, type) else str(hint)


def check_node(path: str, node: DictConfig) -> None:
    """Check one ``_target_`` node's keys and plain values against its callable."""
    target_name = node._target_
    try:
        target = get_object(target_name)
    except Exception as err:
        raise ConfigError(f"{path}._target_={target_name!r} cannot be imported: {err}") from err
    sig = _signature_of(target)
    if sig is None:
        return
    params = {n: p for n, p in sig.parameters.items() if n != "self"}
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    hints = _resolved_hints(target)
    for key in node.keys():
        if key in HYDRA_KEYS:
            continue
        full = f"{path}.{key}" if path else str(key)
        if key not in named:
            if takes_kwargs:
                continue
            close = difflib.get_close_matches(str(key), sorted(named), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown config key '{full}' for {target_name}.{hint} "
                f"Allowed keys: {sorted(named)}"
            )
        if OmegaConf.is_missing(node, key):
            continue
        try:
            value = node[key]
        except Exception:  # an interpolation that only resolves at run time
            continue
        if value is None and params[key].default is None:
            continue
        annotation = hints.get(key, params[key].annotation)
        ok, expected = _type_ok(value, annotation)
        if not ok and value is None:
            raise ConfigError(f"config key '{full}' is null but {target_name} needs a value "
                              f"({_hint_name(annotation)}; an interpolation that resolved to "
                              "null?)")
        if not ok:
            raise ConfigError(f"config key '{full}' = {value!r}: expected {expected}")


# Keys naming directories a run writes into (checked writable at start-up).
OUTPUT_DIR_KEYS: tuple[str, ...] = ("output_dir", "dirpath", "save_dir", "default_root_dir")


def range_for(path: str) -> Range | None:
    """The :data:`RANGES` rule for a dotted key path (list indices dropped), if any."""
    parts = path.split(".")
    for pattern, rule in RANGES:
        depth = pattern.count(".") + 1
        if len(parts) >= depth and fnmatchcase(".".join(parts[-depth:]), pattern):
            return rule
    return None


def _iter_values(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """``(path, value)`` of every leaf; list items under their list's path, ``hydra`` skipped."""
    if isinstance(node, DictConfig):
        for key in node.keys():
            if key == "hydra" or OmegaConf.is_missing(node, key):
                continue
            try:
                value = node[key]
            except Exception:  # an interpolation that only resolves at run time
                continue
            yield from _iter_values(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, ListConfig):
        for item in node:
            yield from _iter_values(item, path)
    else:
        yield path, node


def check_ranges(cfg: DictConfig, roots: list[str]) -> None:
    """Every number whose key has a :data:`RANGES` rule lies in that range."""
    for section in roots:
        for path, value in _iter_values(cfg[section], section):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            rule = range_for(path)
            if rule is not None and value not in rule:
                raise ConfigError(f"config key '{path}' = {value!r} is out of range: expected "
                                  f"{rule.describe()}")


def check_output_dirs(cfg: DictConfig, roots: list[str]) -> None:
    """Every output directory (:data:`OUTPUT_DIR_KEYS`) exists writable or can be created.

    Nothing is created here: the nearest existing ancestor must be a writable directory.
    """
    for section in roots:
        for path, value in _iter_values(cfg[section], section):
            if path.rsplit(".", 1)[-1] not in OUTPUT_DIR_KEYS or not isinstance(value, str):
                continue
            if "://" in value:  # remote logger/checkpoint locations: not checked here
                continue
            problem = _unwritable(Path(value))
            if problem:
                raise ConfigError(f"output directory '{path}' = {value!r} cannot be written: "
                                  f"{problem}")


def _unwritable(directory: Path) -> str | None:
    """Why ``directory`` cannot be written or created, or ``None``."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "it" if existing == directory else f"its parent {existing}"
        return f"{what} is not writable by this user (uid {os.getuid()})"
    return None


def check_config(cfg: DictConfig, sections: list[str] | None = None) -> None:
    """Check ``_target_`` nodes, value ranges and output directories under ``sections``
    (default: the whole config)."""
    roots = sections if sections is not None else [k for k in cfg.keys() if k != "hydra"]
    roots = [s for s in roots if s in cfg and cfg[s] is not None]
    for section in roots:
        for path, node in _iter_target_nodes(cfg[section], section):
            check_node(path, node)
    check_ranges(cfg, roots)
    check_output_dirs(cfg, roots)
