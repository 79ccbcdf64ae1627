"""Typed, validated settings from TOML files with CLI overrides.

Settings are dataclasses. ``from_mapping`` checks every key and type against the
dataclass and reports the first problem as ``<file>: key 'a.b': <problem>``, so a
typo in a rig or pipeline file is a one-line error, never a silent default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from .errors import Rb2vError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise Rb2vError(f"{path}: settings file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise Rb2vError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise Rb2vError(f"{path}: cannot read: {e.strerror}") from None


def _type_name(tp) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp, where: str, source: str):
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where, source)
            except Rb2vError as e:
                errors.append(e)
        raise errors[0]
    if origin is Literal:
        if value not in get_args(tp):
            raise Rb2vError(f"{source}: key '{where}' must be one of {_type_name(tp)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise Rb2vError(f"{source}: key '{where}' must be a table, got {type(value).__name__}")
        return from_mapping(tp, value, source, prefix=f"{where}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise Rb2vError(f"{source}: key '{where}' must be a list, got {type(value).__name__}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise Rb2vError(f"{source}: key '{where}' must have {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{where}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_convert(v, item, f"{where}[{i}]", source) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise Rb2vError(f"{source}: key '{where}' must be a table, got {type(value).__name__}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Rb2vError(f"{source}: key '{where}' must be a number, got {value!r}")
        if value != value:  # NaN passes every range check of a validate()
            raise Rb2vError(f"{source}: key '{where}' must be a number, got nan")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Rb2vError(f"{source}: key '{where}' must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise Rb2vError(f"{source}: key '{where}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise Rb2vError(f"{source}: key '{where}' must be a string, got {value!r}")
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise Rb2vError(f"{source}: key '{where}' has unsupported value {value!r}")


def from_mapping(cls: type[T], data: Mapping[str, Any], source: str, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types are errors."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise Rb2vError(f"{source}: unknown key '{prefix}{unknown[0]}' (known: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{prefix}{name}", source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise Rb2vError(f"{source}: missing key '{prefix}{name}'")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as e:
            raise Rb2vError(f"{source}: {e}") from None
    return obj


def apply_overrides(data: dict, overrides: Mapping[str, Any]) -> dict:
    """Return a copy of ``data`` with dotted-key overrides (``{"search.radius": 6}``) set.

    ``None`` values are skipped so unset CLI options leave the file's value alone.
    """
    out = json.loads(json.dumps(data))
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def settings_hash(obj) -> str:
    """Stable short hash of settings (dataclass or mapping), for resume keys."""
    data = to_dict(obj) if dataclasses.is_dataclass(obj) else obj
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


PROJECT_FILE = "rb2v.toml"
PROJECT_DEFAULTS = {"raw": "raw", "out": "out"}


def project_path(key: str, *, required: bool = False) -> Path:
    """RAW / OUT when a command is not given one: ``./rb2v.toml``'s value, else its default name
    (``raw``, ``out``). Without an rb2v.toml, ``required`` paths are an error, others the default."""
    cfg = Path(PROJECT_FILE)
    if not cfg.exists():
        if required:
            raise Rb2vError(f"no {key.upper()} given and no {PROJECT_FILE} in {Path.cwd()}")
        return Path(PROJECT_DEFAULTS[key])
    settings = read_toml(cfg)
    for name, value in settings.items():  # every key checked: a typo is an error, never a silent default
        if name not in PROJECT_DEFAULTS:
            raise Rb2vError(f"{cfg}: unknown key '{name}' (known: {', '.join(PROJECT_DEFAULTS)})")
        if not isinstance(value, str):
            raise Rb2vError(f"{cfg}: key '{name}' must be a path string")
    return Path(settings.get(key, PROJECT_DEFAULTS[key]))


def frame_size(text: str, option: str = "--size", low: int = 32) -> tuple[int, int]:
    """``WxH`` from the command line, each side at least ``low``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise Rb2vError(f"{option} {text!r}: expected WxH, e.g. 1280x720") from None
    if w < low or h < low:
        raise Rb2vError(f"{option} {text!r}: at least {low}x{low}")
    return w, h
