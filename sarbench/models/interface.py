"""The model interface: what sarbench's trainer, evaluation, attention analysis and cases need from a model.

A model is a ``torch.nn.Module`` subclassing :class:`SequentialRecommender`, built from a frozen
dataclass config (``model.cfg``). The config must have

    num_items: int       items are ids 1..num_items; 0 is padding and num_items + 1 is [MASK]
    attention: str       "AR" (trained to predict the next item at every position) or "AE"
                         (trained to recover [MASK]ed items); this decides the training targets
                         and where the evaluation reads the prediction
    max_len: int         the longest input the model takes

and may have ``mask_prob`` (AE: fraction of positions masked in training; default 0.2),
``num_users`` with ``sse_item_prob``/``sse_user_prob`` (user embeddings and SSE-PT; default 0).
Every field is written into each result record, so a config must be JSON-able.

A model implements two methods and may override three:

    hidden_states(items (B, L) long, users (B,) or None) -> (B, L, d)
        items are left-aligned ("tail padding": a user's items at 0..len-1, zeros after).
        An AR model's output at position t must not depend on items after t.
    output_weights() -> (W (N, d_out), bias (N,) or None)
        the output item embeddings of items 1..N: the score of item i at a position with state h
        is output_hidden(h) . W[i-1] (+ bias[i-1]). Trainer losses and evaluation use this.
    output_hidden(h) -> h'     map trunk states into the output space (default: identity)
    states_at(items, pos)      the states at one position per row (default: hidden_states, then read)
    uses_users: bool           True when hidden_states needs user ids (the evaluation passes them)
    attention_maps(...)        post-softmax attention per layer, for the attention analysis
                               (only self-attentive models; others leave it out)

The base class provides the evaluation side from these: ``eval_inputs`` (AR reads the last history
position; AE appends [MASK] after the last max_len - 1 history items, as the authors' code),
``history_window`` and ``score`` (one score per id 0..N; column 0, padding, is -inf).

To make a model runnable by name -- in the benchmark's cases, ``sarbench run`` and reports -- register a
:class:`ModelSpec`: either from your package's entry points (group ``sarbench.models``, pointing at a
ModelSpec) or by calling :func:`register` in your ``conftest.py``. ``sarbench.models.gru4rec`` is the
worked example, registered through the entry point exactly as an outside package would.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from .. import objective
from ..config import ATTENTIONS, TrainingFields, training_fields  # noqa: F401  (re-exported: the interface's fields)

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "sarbench.models"

# The paper's model, loaded like an entry point ("module:attribute"; pyproject.toml lists the others):
# nothing here imports a model, and the self-attentive recommender is one registered model among others.
BUILTIN_MODELS = {"sar": "sarbench.models.sar:SPEC"}


class SequentialRecommender(nn.Module):
    """Base class of sarbench models; see the module docstring for the contract."""

    uses_users: bool = False
    trim_padding: bool = True  # score(): drop the padding columns no row of the batch uses

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.fields = training_fields(cfg)

    # --- to implement ------------------------------------------------------------------------------
    def hidden_states(self, items: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement hidden_states(items, users=None)")

    def output_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError(f"{type(self).__name__} must implement output_weights()")

    # --- may override --------------------------------------------------------------------------------
    def output_hidden(self, h: torch.Tensor) -> torch.Tensor:
        return h

    def logit_offset(self, h: torch.Tensor, users: torch.Tensor) -> torch.Tensor | None:
        """A term added to every item's training logit at states ``h`` (P, d) of ``users`` (P,), or None.

        Sampled losses (BCE) add it to the positive's and the negatives' logits; it is the same for every
        item, so it changes no ranking. SSE-PT's user term is one; the default is none.
        """
        return None

    def states_at(self, items, pos, users=None) -> torch.Tensor:
        """Hidden states (B, d) at one position per row, ``pos`` (B,): what scoring reads.

        The default computes every position; a model may skip what the read rows do not need (the
        self-attentive model computes its last block at the read rows only) as long as the numbers
        are those of ``hidden_states`` at ``pos``.
        """
        h = self.hidden_states(items, users)
        return h[torch.arange(len(h), device=h.device), pos]

    def attention_maps(self, histories, lengths, users=None):
        raise NotImplementedError(f"{type(self).__name__} exposes no attention maps")

    # --- evaluation, from the above -----------------------------------------------------------------
    def history_window(self, max_len: int) -> int:
        """History items in the evaluation input: AR reads max_len, AE max_len - 1 and a [MASK]."""
        return objective.history_window(self.fields, max_len)

    def eval_inputs(self, histories, lengths):
        """Place the prediction slot (sarbench.objective.eval_inputs): AR reads the last history
        position; AE appends [MASK]. Returns (inputs, position of the prediction per user)."""
        return objective.eval_inputs(self.fields, histories, lengths)

    @torch.no_grad()
    def score(self, histories, lengths, users=None):
        """Scores (B, N + 1) for ids 0..N (column 0, padding, is -inf).

        Padding columns that no row uses are dropped first: with tail padding and positions counted
        from the left they change no real position's output, and a batch of short histories (the
        evaluation groups users by length) then costs what its items cost.
        """
        width = max(int(lengths.max()), 1) if len(lengths) else histories.shape[1]
        if self.trim_padding and width < histories.shape[1]:
            histories = histories[:, :width]
        inputs, pos = self.eval_inputs(histories, lengths)
        h = self.output_hidden(self.states_at(inputs, pos, users))  # (B, d_out)
        w, b = self.output_weights()
        logits = h @ w.T
        if b is not None:
            logits = logits + b
        pad = torch.full((len(h), 1), float("-inf"), device=h.device, dtype=logits.dtype)
        return torch.cat([pad, logits], dim=1)


# --- registration ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """How sarbench builds and names a model.

    Attributes:
        name: short name used in case ids (``vanilla[ml-1m-gru4rec-AR-ce]``), ``sarbench run --model``
            and reports; lowercase letters, digits and ``_``.
        config: the model's frozen config dataclass.
        build: config -> model (a :class:`SequentialRecommender`).
        defaults: ``(attention, dataset, num_items, num_users) -> (config, TrainConfig)``: the
            settings a benchmark case starts from (the scale's epochs and patience are applied on top).
            None only for the paper's model, whose settings are the design presets (sarbench.presets).
        attentions: the attentions the model supports (a GRU is causal by construction: ``("AR",)``).
        description: one line for listings.
    """

    name: str
    config: type
    build: Callable[[Any], SequentialRecommender]
    defaults: Callable[[str, str, int, int], tuple] | None = None
    attentions: tuple[str, ...] = ATTENTIONS
    description: str = ""

    def __post_init__(self):
        if not self.name or not all(c.islower() or c.isdigit() or c == "_" for c in self.name):
            raise ValueError(f"model name {self.name!r}: use lowercase letters, digits and '_'")
        if not dataclasses.is_dataclass(self.config):
            raise TypeError(f"model {self.name!r}: config must be a dataclass, got {self.config!r}")
        bad = [a for a in self.attentions if a not in ATTENTIONS]
        if not self.attentions or bad:
            raise ValueError(f"model {self.name!r}: attentions must be a non-empty subset of ('AE', 'AR'), got "
                             f"{self.attentions!r}")


_REGISTRY: dict[str, ModelSpec] = {}
_ENTRY_POINTS_LOADED = False


def register(spec: ModelSpec, replace: bool = False) -> ModelSpec:
    """Make ``spec`` known by its name (for example from a ``conftest.py``); returns it."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"register() takes a sarbench.models.ModelSpec, got {type(spec).__name__}")
    old = _REGISTRY.get(spec.name)
    if old is not None and old is not spec and not replace:
        raise ValueError(f"a model named {spec.name!r} is already registered ({old.config.__module__}); "
                         "pass replace=True to override it")
    _REGISTRY[spec.name] = spec
    return spec


def _load_spec(value: str) -> ModelSpec:
    """The ModelSpec an entry-point value (``"module:attribute"``) names; a callable is called."""
    module, _, attribute = value.partition(":")
    spec = getattr(importlib.import_module(module), attribute)
    return spec() if callable(spec) and not isinstance(spec, ModelSpec) else spec


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    from importlib.metadata import entry_points

    for name, value in BUILTIN_MODELS.items():  # sarbench's own: an error here is sarbench's, so it raises
        spec = _load_spec(value)
        if spec.name != name:
            raise ValueError(f"built-in model {name!r} names a model called {spec.name!r}")
        register(spec)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = _load_spec(ep.value)
            if spec.name != ep.name:
                raise ValueError(f"entry point {ep.name!r} names a model called {spec.name!r}")
            register(spec)
        except Exception as exc:  # a broken third-party model must not break the suite; say so
            log.warning("sarbench: model entry point %r (%s) could not be loaded: %s", ep.name, ep.value, exc)


def registered() -> dict[str, ModelSpec]:
    """Every known model: the built-in ones, entry points of installed packages, and register() calls."""
    _load_entry_points()
    return dict(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    models = registered()
    if name not in models:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(models))}")
    return models[name]


def spec_for_config(cfg) -> ModelSpec:
    """The registered spec whose config class ``cfg`` is an instance of."""
    for spec in registered().values():
        if type(cfg) is spec.config:
            return spec
    raise KeyError(f"no registered model takes a {type(cfg).__name__} config")


def build_model(cfg) -> SequentialRecommender:
    """The model a config describes (through its registered spec)."""
    model = spec_for_config(cfg).build(cfg)
    if not isinstance(model, SequentialRecommender):
        raise TypeError(f"{type(cfg).__name__} built a {type(model).__name__}, not a SequentialRecommender")
    return model
