"""Search spaces: the paper's hyperparameter grids as named spaces, and their validation.

A space is a grid over fields of the model config (:class:`~sarbench.models.sar.SARConfig`) and
the train config (:class:`~sarbench.train.TrainConfig`), named by their field names, plus fixed
values and *tied* fields that copy a searched one. Every trial is one point of the grid
(``num_samples=1`` over a grid, as the authors ran Ray Tune); its overrides are applied on top of
the case's preset with ``dataclasses.replace``.

The named spaces (``SPACES``) are the authors' grids (protocol.md §5, their Ray-Tune configs) and
the vanilla ranges of the paper's Section 2.2.3:

========== ======== ================================================================= ====== =====
space      design   grid                                                              AE     AR
========== ======== ================================================================= ====== =====
loss_ce    ce       mask_prob{.2,.4,.6,.8} x heads{1,2} x dropout{0,.2,.4,.6,.8} x d{32,64} 80     20
loss_bce   bce      the same                                                          80     20
ssept      ssept    the same x sse_item_prob{.2,.4,.6,.8} x sse_user_prob{.2,.4,.6,.8}  1,280  320
local_attn local    the same x weight_decay{0,1e-4,1e-2,1}                            320    80
hf         (given)  mask_prob x heads x dropout, d = 64 (LLaMA: no dropout axis)        40     10
vanilla    vanilla  d{32..512} x dropout{.1..9} x attn_dropout{.1..9} x L{1,2,4} x       14,580 3,645
                    H{1,2,4} x mask_prob{.2,.4,.6,.8}
========== ======== ================================================================= ====== =====

Every grid of the authors fixes L = 2 and lr = 1e-3. ``dropout`` in their modular and HF models is
one rate for the hidden and the attention dropout, so ``attn_dropout`` is tied to it there; the
vanilla ranges search the two separately, as Section 2.2.3 says. AR grids drop ``mask_prob`` (the
causal model masks nothing; the authors fixed it at .2, unused).

Validation (:func:`check_space`) runs before any trial starts and names the key of the first
problem: an unknown parameter, a field that is not a hyperparameter (seed, epochs, metric ...), an
empty or duplicated choice list, a value of the wrong type, a value outside what the model accepts
(a probability of 1, zero heads, heads that do not divide the hidden size ...), or a parameter that
does nothing for this case (``mask_prob`` for AR, SSE-PT rates without user embeddings).
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import Attention, SARConfig, TrainConfig
from ..designs import DESIGNS
from ..fields import FieldValueError, config_fields, field_value


class SpaceError(ValueError):
    """A search space that cannot be searched; the message names the space and the key."""


# Fields that are not hyperparameters of a trial: the search protocol or the case decides them.
NOT_SEARCHABLE = {
    "num_items": "it is the dataset's item count",
    "num_users": "it is the dataset's user count (the ssept design sets it)",
    "attention": "a search is for one attention; pass AE or AR",
    "seed": "every trial uses the search's seed (--seed)",
    "device": "the trial's resources decide it (--gpus-per-trial)",
    "max_epochs": "the search protocol sets it (--max-t x --eval-every)",
    "eval_every": "the search protocol sets it (--eval-every)",
    "patience": "the scheduler decides when a trial stops",
    "metric": "the search metric is validation Recall@10",
    "ks": "it is part of the evaluation protocol",
    "exclusion": "it is part of the evaluation protocol",
    "eval_users": "it is part of the evaluation protocol (--eval-users)",
    "precision": "it is a run setting, not a hyperparameter",
    "deterministic": "it is a run setting, not a hyperparameter",
    "progress": "it is a run setting, not a hyperparameter",
    "max_minutes": "it is a run setting, not a hyperparameter",
}

# What the model accepts beyond the config classes' own checks: (low, high, low inclusive, high inclusive).
RANGES = {
    "dropout": (0.0, 1.0, True, False),
    "attn_dropout": (0.0, 1.0, True, False),
    "sse_item_prob": (0.0, 1.0, True, False),
    "sse_user_prob": (0.0, 1.0, True, False),
    "mask_prob": (0.0, 1.0, False, False),
    "hidden": (1, math.inf, True, False),
    "heads": (1, math.inf, True, False),
    "layers": (1, math.inf, True, False),
    "max_len": (1, math.inf, True, False),
    "batch_size": (1, math.inf, True, False),
    "num_negatives": (1, math.inf, True, False),
    "local_window": (0, math.inf, True, False),
    "local_heads": (0, math.inf, True, False),
    "lr": (0.0, math.inf, False, False),
    "weight_decay": (0.0, math.inf, True, False),
    "eps": (0.0, math.inf, False, False),
    "grad_clip": (0.0, math.inf, True, False),
    "length_buckets": (0, math.inf, True, False),
}


@dataclass(frozen=True)
class Space:
    """A grid of hyperparameters: ``grid`` axes (in order), ``fixed`` values, ``tied`` copies.

    ``tied`` holds (field, parameter) pairs: the field takes the value of the searched or fixed
    parameter (the authors' single ``dropout`` sets ``dropout`` and ``attn_dropout``). ``design``
    is the preset design the space belongs to (None: the caller names it).
    """

    name: str
    grid: tuple[tuple[str, tuple], ...]
    fixed: tuple[tuple[str, object], ...] = ()
    tied: tuple[tuple[str, str], ...] = ()
    design: str | None = None
    source: str = ""

    @property
    def axes(self) -> dict[str, tuple]:
        return dict(self.grid)

    @property
    def size(self) -> int:
        """Number of grid points (trials)."""
        return math.prod(len(values) for _, values in self.grid)

    def for_attention(self, attention: str) -> "Space":
        """The space an ``attention`` case searches: AR drops ``mask_prob`` from the grid."""
        if attention != Attention.AR or "mask_prob" not in self.axes:
            return self
        return replace(self, grid=tuple((k, v) for k, v in self.grid if k != "mask_prob"))

    def overrides(self, point: dict) -> dict:
        """Field -> value of one grid point: its values, the fixed ones and the tied copies."""
        values = {**dict(self.fixed), **{k: point[k] for k, _ in self.grid}}
        values.update({field: values[source] for field, source in self.tied})
        return values

    def points(self) -> list[dict]:
        """Every grid point as parameter -> value, the first axis varying slowest."""
        names = [k for k, _ in self.grid]
        return [dict(zip(names, combo)) for combo in itertools.product(*(v for _, v in self.grid))]

    def as_dict(self) -> dict:
        return {"name": self.name, "design": self.design, "grid": {k: list(v) for k, v in self.grid},
                "fixed": dict(self.fixed), "tied": dict(self.tied), "source": self.source}


def space_from_dict(data: dict, where: str = "space") -> Space:
    """A :class:`Space` from its dictionary form (``Space.as_dict``, or a JSON space file)."""
    if not isinstance(data, dict):
        raise SpaceError(f"{where}: expected an object with 'grid' (and optional 'fixed', 'tied', 'design')")
    unknown = set(data) - {"name", "design", "grid", "fixed", "tied", "source"}
    if unknown:
        raise SpaceError(f"{where}: unknown entry {sorted(unknown)[0]!r}; expected name, design, grid, fixed, tied")
    grid = data.get("grid")
    if not isinstance(grid, dict):
        raise SpaceError(f"{where}: 'grid' must map each parameter to a list of values")
    axes = []
    for key, values in grid.items():
        if not isinstance(values, (list, tuple)):
            raise SpaceError(f"{where}: grid key {key!r}: expected a list of values, got {values!r}")
        axes.append((key, tuple(values)))
    for entry in ("fixed", "tied"):
        if not isinstance(data.get(entry, {}), dict):
            raise SpaceError(f"{where}: '{entry}' must be an object")
    return Space(name=str(data.get("name") or where), grid=tuple(axes), fixed=tuple(data.get("fixed", {}).items()),
                 tied=tuple(data.get("tied", {}).items()), design=data.get("design"),
                 source=str(data.get("source", "")))


def load_space(path: str | Path) -> Space:
    """A space from a JSON file (the form of ``Space.as_dict``); errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpaceError(f"{path}: cannot read the space file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise SpaceError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    return space_from_dict(data, where=str(path))


def parse_values(text: str) -> tuple:
    """``"1,2"`` -> (1, 2); each item is read as JSON (numbers, true/false) or else kept as text."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(json.loads(part))
        except json.JSONDecodeError:
            out.append(part)
    return tuple(out)


def with_axes(space: Space, pairs: list[str]) -> Space:
    """``space`` with ``KEY=V1,V2`` axes added or replaced (an empty list stays empty: check_space rejects it)."""
    axes = dict(space.grid)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise SpaceError(f"--grid expects KEY=V1,V2,..., got {pair!r}")
        axes[key.strip()] = parse_values(text)
    fixed = tuple((k, v) for k, v in space.fixed if k not in axes)
    return replace(space, grid=tuple(axes.items()), fixed=fixed)


# --- validation ----------------------------------------------------------------------------------
def _coerce(where: str, key: str, value, typ):
    """``value`` as a value of field type ``typ`` (int for float is fine; bool is never a number)."""
    try:
        return field_value(key, value, typ)
    except FieldValueError as exc:
        raise SpaceError(f"{where}: {exc}") from None


def _check_range(where: str, key: str, value) -> None:
    if key not in RANGES:
        return
    lo, hi, lo_in, hi_in = RANGES[key]
    if isinstance(value, float) and math.isnan(value):
        raise SpaceError(f"{where}: {key}={value!r} is not a number")
    below = value < lo or (value == lo and not lo_in)
    above = value > hi or (value == hi and not hi_in)
    if below or above:
        low = "[" if lo_in else "("
        high = "]" if hi_in else ")"
        raise SpaceError(f"{where}: {key}={value!r} is outside what the model accepts: {low}{lo}, {hi}{high}")


def _check_key(where: str, key: str, known: dict) -> None:
    if key in NOT_SEARCHABLE:
        raise SpaceError(f"{where}: {key!r} cannot be searched: {NOT_SEARCHABLE[key]}")
    if key not in known:
        names = ", ".join(sorted(k for k in known if k not in NOT_SEARCHABLE))
        raise SpaceError(f"{where}: unknown parameter {key!r}; searchable fields: {names}")


def check_space(space: Space, model_cfg: SARConfig, train_cfg: TrainConfig) -> Space:
    """Validate ``space`` for a case whose preset gives ``model_cfg``/``train_cfg``; the space with typed values.

    Returns the space with every value coerced to its field's type (an int given for a float field
    becomes a float). Raises :class:`SpaceError` naming the key (and, for a bad combination, the
    values) of the first problem. Every grid point is built as a config, so a
    combination the model rejects (heads that do not divide the hidden size) fails here, not in a
    trial hours later.
    """
    name = space.name
    where = f"space {name}"
    known = config_fields(type(model_cfg))
    if not space.grid:
        raise SpaceError(f"space {name}: no parameter to search (the grid is empty)")
    seen: set[str] = set()
    coerced_axes = []
    for key, values in space.grid:
        _check_key(where, key, known)
        if key in seen:
            raise SpaceError(f"space {name}: {key!r} appears twice")
        seen.add(key)
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise SpaceError(f"space {name}: {key!r} has an empty choice list")
        typed = tuple(_coerce(where, key, v, known[key][1]) for v in values)
        for v in typed:
            _check_range(where, key, v)
        if len(set(typed)) != len(typed):
            raise SpaceError(f"space {name}: {key!r} lists a value twice: {list(values)}")
        coerced_axes.append((key, typed))
    fixed = []
    for key, value in space.fixed:
        _check_key(where, key, known)
        if key in seen:
            raise SpaceError(f"space {name}: {key!r} is both searched and fixed")
        seen.add(key)
        value = _coerce(where, key, value, known[key][1])
        _check_range(where, key, value)
        fixed.append((key, value))
    for field_name, source in space.tied:
        _check_key(where, field_name, known)
        if field_name in seen:
            raise SpaceError(f"space {name}: {field_name!r} is tied to {source!r} and also searched or fixed")
        if source not in seen:
            raise SpaceError(f"space {name}: {field_name!r} is tied to {source!r}, which the space does not set")
        if known[field_name][1] != known[source][1]:
            raise SpaceError(f"space {name}: {field_name!r} cannot copy {source!r} (different types)")
    space = replace(space, grid=tuple(coerced_axes), fixed=tuple(fixed))
    _check_useful(space, model_cfg)
    for point in space.points():
        values = space.overrides(point)
        model_over = {k: v for k, v in values.items() if known[k][0] == "model"}
        train_over = {k: v for k, v in values.items() if known[k][0] == "train"}
        try:
            replace(model_cfg, **model_over)
            replace(train_cfg, **train_over)
        except (ValueError, TypeError) as exc:
            combo = ", ".join(f"{k}={v!r}" for k, v in point.items())
            raise SpaceError(f"space {name}: the grid point {combo} is not a valid configuration: {exc}") from None
    return space


def _check_useful(space: Space, model_cfg: SARConfig) -> None:
    """Reject parameters that cannot change this case's result (each value would rerun the same trial)."""
    keys = {k for k, _ in space.grid}
    if getattr(model_cfg, "attention", None) == Attention.AR and "mask_prob" in keys:
        raise SpaceError(f"space {space.name}: 'mask_prob' does nothing for AR (the causal model masks nothing)")
    for key in ("sse_item_prob", "sse_user_prob"):
        if key in keys and not getattr(model_cfg, "num_users", 0):
            raise SpaceError(f"space {space.name}: {key!r} does nothing without user embeddings (the ssept design)")


def check_overrides(values: dict, where: str, model_cls: type = SARConfig) -> dict:
    """``values`` (field -> value) checked as a space's fixed values would be: known, searchable, typed, in range."""
    known = config_fields(model_cls)
    out = {}
    for key, value in values.items():
        _check_key(where, key, known)
        out[key] = _coerce(where, key, value, known[key][1])
        _check_range(where, key, out[key])
    return out


def split_overrides(values: dict, model_cls: type = SARConfig) -> tuple[dict, dict]:
    """(model overrides, train overrides) of a field -> value dict (fields of ``model_cls`` and TrainConfig)."""
    known = config_fields(model_cls)
    unknown = [k for k in values if k not in known]
    if unknown:
        raise SpaceError(f"unknown configuration field {unknown[0]!r}")
    return ({k: v for k, v in values.items() if known[k][0] == "model"},
            {k: v for k, v in values.items() if known[k][0] == "train"})


# --- the paper's grids -----------------------------------------------------------------------------
_MASK = (0.2, 0.4, 0.6, 0.8)
_HEADS = (1, 2)
_DROPOUT = (0.0, 0.2, 0.4, 0.6, 0.8)
_HIDDEN = (32, 64)
_AUTHORS_FIXED = (("layers", 2), ("lr", 1e-3))
_ONE_DROPOUT = (("attn_dropout", "dropout"),)
_AUTHORS = "the authors' Ray-Tune grid (protocol.md section 5)"
_BASE = (("mask_prob", _MASK), ("heads", _HEADS), ("dropout", _DROPOUT), ("hidden", _HIDDEN))
_TENTHS = tuple(round(0.1 * k, 1) for k in range(1, 10))
# A design's space is named by its column group (designs.py); its design and fixed settings come from there.
_DESIGN_OF = {d.variant: d.name for d in DESIGNS.values()}
_LOCAL = tuple((k, v) for k, v in DESIGNS["local"].model.items() if k != "heads")  # heads is an axis

SPACES: dict[str, Space] = {
    "loss_ce": Space("loss_ce", _BASE, _AUTHORS_FIXED, _ONE_DROPOUT, design=_DESIGN_OF["loss_ce"], source=_AUTHORS),
    "loss_bce": Space("loss_bce", _BASE, _AUTHORS_FIXED, _ONE_DROPOUT, design=_DESIGN_OF["loss_bce"], source=_AUTHORS),
    "ssept": Space("ssept", (*_BASE, ("sse_item_prob", _MASK), ("sse_user_prob", _MASK)), _AUTHORS_FIXED,
                   _ONE_DROPOUT, design=_DESIGN_OF["ssept"], source=_AUTHORS),
    "local_attn": Space("local_attn", (*_BASE, ("weight_decay", (0.0, 1e-4, 1e-2, 1.0))),
                        (*_AUTHORS_FIXED, *_LOCAL), _ONE_DROPOUT, design=_DESIGN_OF["local_attn"], source=_AUTHORS),
    "hf": Space("hf", _BASE[:3], (*_AUTHORS_FIXED, ("hidden", 64)), _ONE_DROPOUT, design=None, source=_AUTHORS),
    "vanilla": Space("vanilla", (("hidden", (32, 64, 128, 256, 512)), ("dropout", _TENTHS), ("attn_dropout", _TENTHS),
                                 ("layers", (1, 2, 4)), ("heads", (1, 2, 4)), ("mask_prob", _MASK)),
                     design=_DESIGN_OF["vanilla"], source="the paper's Section 2.2.3 (hyper-parameter tuning)"),
}


def for_model(space: Space, model_cfg) -> Space:
    """``space`` as a case of ``model_cfg``'s model searches it: a tied field the model lacks is dropped (a
    Table-6 backbone has one ``dropout`` for hidden states and attention, no ``attn_dropout``), and the named
    ``hf`` space gives LLaMA no dropout axis: the authors' LLaMA had no dropout (their grid's five rates ran
    one model five times), and its Table-6 defaults keep 0.0, the model their cells measure."""
    fields = {f.name for f in dataclasses.fields(model_cfg)}
    tied = tuple((f, src) for f, src in space.tied if f in fields)
    grid = space.grid
    if space.name == "hf" and type(model_cfg).__name__ == "LlamaRecConfig":
        grid = tuple((k, v) for k, v in grid if k != "dropout")
    return replace(space, grid=grid, tied=tied) if (tied, grid) != (space.tied, space.grid) else space


def get_space(name_or_path: str | Path) -> Space:
    """A named space, or a space read from a JSON file; an unknown name lists the known ones."""
    name = str(name_or_path)
    if name in SPACES:
        return SPACES[name]
    if name.endswith(".json") or Path(name).is_file():
        return load_space(name)
    raise SpaceError(f"unknown space {name!r}; named spaces: {', '.join(SPACES)} (or a JSON space file)")


__all__ = ["SPACES", "NOT_SEARCHABLE", "Space", "SpaceError", "check_overrides", "check_space", "config_fields",
           "for_model", "get_space", "load_space", "parse_values", "space_from_dict", "split_overrides", "with_axes"]
