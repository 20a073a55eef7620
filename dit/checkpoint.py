"""One self-describing checkpoint format for every model.

A checkpoint is a dict of plain types and tensors only, so `torch.load(path, weights_only=True)` reads it and
`build_model_from_checkpoint` rebuilds the network from the file alone (as nanoGPT stores `model_args`).

Layout: format, format_version, config {"model": registry name, "model_config": {...}, ...}, model_state,
ema_state, optimizer_state, train_state (step, RNG states, ...), extra (style/player tables, data statistics).
An inference export has the same layout with model_state/optimizer_state set to None.
"""

from __future__ import annotations

import importlib
import os
import pickle
import random
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from data.atomic import atomic_path
from data.errors import BadInputError
from dit.models import DiTConfig, PositionDiT

FORMAT = "osu-dit-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "config", "model_state", "ema_state", "train_state", "extra")

_PLAIN_SCALARS = (str, int, float, bool, type(None))


#################################################################################
#                                Model registry                                 #
#################################################################################

# name -> (model class taking a config, config class with from_dict). The replay model registers itself.
MODEL_REGISTRY: dict[str, tuple[Callable[..., nn.Module], type]] = {}


def register_model(name: str, model_class: Callable[..., nn.Module], config_class: type) -> None:
    """Make `build_model_from_checkpoint` able to rebuild `model_class` from a config stored under `name`."""
    MODEL_REGISTRY[name] = (model_class, config_class)


register_model("PositionDiT", PositionDiT, DiTConfig)


def model_config_dict(name: str, config) -> dict:
    """The `config` entries that identify a registered model: {"model": name, "model_config": plain dict}."""
    if name not in MODEL_REGISTRY:
        raise KeyError(f"model {name!r} is not registered (known: {sorted(MODEL_REGISTRY)})")
    module = getattr(MODEL_REGISTRY[name][0], "__module__", "")
    return {"model": name, "model_module": module, "model_config": config.to_dict()}


def _registered(name: str, module: str | None) -> tuple[Callable[..., nn.Module], type]:
    """The registry entry for `name`, importing the project module that registers it when needed."""
    if name not in MODEL_REGISTRY and module and module.startswith("dit."):
        # Only our own package: a checkpoint must not be able to make us import arbitrary code.
        importlib.import_module(module)
    if name not in MODEL_REGISTRY:
        raise BadInputError(
            None, f"checkpoint holds model {name!r}, which is not registered ({sorted(MODEL_REGISTRY)})"
        )
    return MODEL_REGISTRY[name]


#################################################################################
#                             Plain-type validation                             #
#################################################################################


def _check_plain(obj, where: str) -> None:
    """Refuse anything `torch.load(weights_only=True)` would not read back (numpy arrays, dataclasses, ...)."""
    if isinstance(obj, _PLAIN_SCALARS) or isinstance(obj, Tensor | torch.Size | torch.dtype):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where}: key {k!r} is {type(k).__name__}, expected str or int")
            _check_plain(v, f"{where}.{k}")
        return
    if isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is {type(obj).__name__}; checkpoints hold plain types and tensors only")


def capture_rng_state() -> dict:
    """Python, numpy and torch RNG states as plain types (numpy's key array becomes a tensor)."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "kind": np_state[0],
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }


def restore_rng_state(state: dict) -> None:
    """Inverse of capture_rng_state."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])


#################################################################################
#                                Save and load                                  #
#################################################################################


def _cpu_state(state: dict | None) -> dict | None:
    if state is None:
        return None
    return {k: v.detach().cpu() if isinstance(v, Tensor) else v for k, v in state.items()}


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model_state: dict | None,
    ema_state: dict | None,
    optimizer_state: dict | None,
    config: dict,
    train_state: dict,
    extra: dict,
) -> None:
    """Write a checkpoint atomically (a kill leaves the previous file or this one, never half)."""
    if "model" not in config or "model_config" not in config:
        raise ValueError("config needs 'model' and 'model_config' (see model_config_dict)")
    if model_state is None and ema_state is None:
        raise ValueError("a checkpoint needs model_state or ema_state")
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config,
        "model_state": _cpu_state(model_state),
        "ema_state": _cpu_state(ema_state),
        "optimizer_state": optimizer_state,
        "train_state": train_state,
        "extra": extra,
    }
    _check_plain(ckpt, "checkpoint")
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with weights_only=True; any unreadable file is a BadInputError, never a pickle error."""
    path = Path(path)
    if path.is_dir():
        raise BadInputError(path, "is a folder, not a checkpoint file")
    if not path.is_file():
        raise BadInputError(path, "no such checkpoint file")
    if path.stat().st_size == 0:
        raise BadInputError(path, "empty file, not a checkpoint")
    _check_archive(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's text here advises weights_only=False, which would run code from the file: never say that.
        raise BadInputError(path, "not a checkpoint (holds objects that are not plain types and tensors)") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise BadInputError(path, f"not a checkpoint, or truncated/corrupt ({_first_sentence(err)})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise BadInputError(path, f"not an {FORMAT} file")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise BadInputError(
            path, f"checkpoint format version {ckpt.get('format_version')} is not supported (expected {FORMAT_VERSION})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise BadInputError(path, f"checkpoint lacks {', '.join(missing)}")
    return ckpt


def _check_archive(path: Path) -> None:
    """Check every member's CRC: torch reads a checkpoint with damaged tensor bytes without a word."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except zipfile.BadZipFile:
        if _looks_truncated_archive(path):
            raise BadInputError(path, "truncated or corrupt checkpoint (its archive has no end record)") from None
        raise BadInputError(path, "not a checkpoint (not a torch archive)") from None
    except Exception as err:  # zlib/struct/EOF errors from a damaged member header
        raise BadInputError(path, f"corrupt checkpoint ({type(err).__name__})") from None
    if damaged is not None:
        member = damaged.split("/", 1)[-1]  # torch roots members in a folder named after the file it wrote
        raise BadInputError(path, f"corrupt checkpoint ({member} fails its checksum)")


def _looks_truncated_archive(path: Path) -> bool:
    """A zip that starts like one but lost its end (what a cut-short copy or write leaves)."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _first_sentence(err: BaseException) -> str:
    """torch's first sentence of an error (its zip errors go on for a paragraph)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text.split(". ")[0].rstrip(".")


def build_model_from_checkpoint(ckpt: dict, *, use_ema: bool = True) -> nn.Module:
    """Rebuild the stored model class from its config and load weights (EMA when present), fp32, eval mode."""
    model_class, config_class = _registered(ckpt["config"]["model"], ckpt["config"].get("model_module"))
    model = model_class(config_class.from_dict(ckpt["config"]["model_config"]))
    state = ckpt["ema_state"] if use_ema and ckpt["ema_state"] is not None else ckpt["model_state"]
    if state is None:
        raise BadInputError(None, "checkpoint holds no weights")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


def export_for_inference(ckpt: dict, dtype: torch.dtype = torch.float16) -> dict:
    """Keep only the EMA weights (cast to `dtype`), config and tables: the file that ships."""
    if dtype not in (torch.float16, torch.float32):
        raise ValueError(f"dtype must be float16 or float32, got {dtype}")
    weights = ckpt["ema_state"] if ckpt["ema_state"] is not None else ckpt["model_state"]
    ema = {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()}
    train_state = {k: v for k, v in ckpt["train_state"].items() if k in ("step", "epoch")}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": ckpt["config"],
        "model_state": None,
        "ema_state": ema,
        "optimizer_state": None,
        "train_state": train_state,
        "extra": ckpt["extra"],
    }


def save_inference_export(ckpt: dict, path: str | os.PathLike, dtype: torch.dtype = torch.float16) -> None:
    """export_for_inference written atomically to `path`."""
    exported = export_for_inference(ckpt, dtype)
    with atomic_path(path) as tmp:
        torch.save(exported, tmp)
