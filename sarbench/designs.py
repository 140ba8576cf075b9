"""What a benchmark case is, declared once: the designs, the tables they fill, and the typed Case.

A *design* is one of the paper's variants of the self-attentive model: the ``vanilla`` network of
Table 4 or a point of Table 5's design space (local attention, SSE-PT, the loss). Each is one
:class:`Design` in ``DESIGNS``: the paper's column group it fills (``variant``, the records'
``variant``), its table, its training loss, its network ("bert4rec" for the authors' Table-4
network, "modsar" for their modular one; the ``model`` of records made before the records named the
model that ran, see ``ResultRecord.model_name``) and the settings it changes on top of its network (``model`` and ``train``: fields of SARConfig and TrainConfig). The presets
(sarbench/presets.py), the cases, the bench parametrization, the CLI listings and the search read
this table; adding a design is one entry here (and its search space in search/spaces.py).

A :class:`Case` is what one benchmark case trains: (table, dataset, model, design, attention, loss,
seed, scale). Its ``id`` (``vanilla[ml-1m-AR-ce]``, ``design[ml-1m-ssept-AR-bce]``,
``vanilla[ml-1m-gru4rec-AR-ce]``) is built here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .config import Attention

#: The tables a case fills: the paper's Tables 4, 5 and 6, and the attention study's own models.
TABLES: tuple[str, ...] = ("vanilla", "design", "hf", "analysis")

#: Table 6's backbones: registered models whose cases fill the ``hf`` table (their name is their variant).
HF_BACKBONES: tuple[str, ...] = ("albert", "llama", "transfo_xl")

#: The paper's self-attentive model (sarbench/models/sar.py), the one model the designs configure.
PAPER_MODEL = "sar"


@dataclass(frozen=True)
class Design:
    """One design of the paper's model (module doc)."""

    name: str  # the preset design: ``<name>-AE`` / ``<name>-AR`` are its presets
    variant: str  # the paper's column group (ResultRecord.variant)
    table: str  # the table its cases fill
    loss: str  # its training loss
    network: str  # "bert4rec" (the authors' Table-4 network) or "modsar" (their modular one)
    summary: str  # what it is, for listings (presets.describe adds the loss and optimiser)
    model: Mapping = field(default_factory=dict)  # SARConfig fields over the network's
    train: Mapping = field(default_factory=dict)  # TrainConfig fields over the network's
    needs_users: bool = False  # user embeddings: the preset needs the dataset's user count
    in_paper: bool = True  # False: beyond the paper (loss_bce: the authors' code has it, the paper no column)


DESIGNS: dict[str, Design] = {d.name: d for d in (
    Design("vanilla", "vanilla", "vanilla", "ce", "bert4rec",
           "BERT4Rec-style network with the authors' Table-4 settings (post-LN, GELU)"),
    # the authors' base run file: 1 head, local (their grid adds a global one with heads=2: the last head
    # local, the other global); AdamW decaying every parameter, decay 0 untuned (presets.py)
    Design("local", "local_attn", "design", "ce", "modsar",
           "modular SASRec-style network; 1 head, local (|i - j| <= 2); tuned with 2, the last one local",
           model={"heads": 1, "local_window": 2, "local_heads": 1},
           train={"optimizer": "adamw", "weight_decay": 0.0, "decay_all": True}),
    Design("ssept", "ssept", "design", "bce", "modsar",
           "modular network with SSE-PT user embeddings (item/user replacement 0.2)",
           model={"sse_item_prob": 0.2, "sse_user_prob": 0.2}, needs_users=True),
    Design("ce", "loss_ce", "design", "ce", "modsar", "modular SASRec-style network (pre-LN, ReLU, no item bias)"),
    Design("bpr", "loss_bpr", "design", "bpr", "modsar", "modular SASRec-style network"),
    Design("bce", "loss_bce", "design", "bce", "modsar", "modular SASRec-style network", in_paper=False),
)}


def design(name: str) -> Design:
    """The declared design ``name``; a KeyError lists the known ones."""
    try:
        return DESIGNS[name]
    except KeyError:
        raise KeyError(f"unknown design {name!r}; known designs: {', '.join(DESIGNS)}") from None


def table_of(design_name: str, model: str = PAPER_MODEL) -> str:
    """The table a case of (design, model) fills: a backbone's ``hf``, else its design's."""
    if model in HF_BACKBONES:
        return "hf"
    return DESIGNS[design_name].table if design_name in DESIGNS else "hf"


def variants(table: str, paper_only: bool = True) -> tuple[str, ...]:
    """The column groups of a table in declaration order (``hf``: the backbones)."""
    if table == "hf":
        return HF_BACKBONES
    return tuple(d.variant for d in DESIGNS.values() if d.table == table and (d.in_paper or not paper_only))


@dataclass(frozen=True)
class Case:
    """One benchmark case (module doc). ``variant`` names a column group other than the design's (the
    attention study's Local-AE); ``loss`` defaults to the design's."""

    table: str
    dataset: str
    attention: Attention
    design: str = "vanilla"
    model: str = PAPER_MODEL
    loss: str = ""
    seed: int = 0
    scale: str = "smoke"
    variant: str = ""

    def __post_init__(self):
        object.__setattr__(self, "attention", Attention.parse(self.attention))
        if self.model == PAPER_MODEL:
            design(self.design)  # a clear error for an unknown design
        if not self.loss:
            object.__setattr__(self, "loss", DESIGNS[self.design].loss if self.design in DESIGNS else "ce")

    @property
    def group(self) -> str:
        """The paper's column group (ResultRecord.variant): the design's, or another model's name."""
        if self.model != PAPER_MODEL:
            return self.model
        return self.variant or DESIGNS[self.design].variant

    @property
    def param_id(self) -> str:
        """The id inside the brackets, as pytest shows the bench case: ``ml-1m-ssept-AR-bce``."""
        middle = self.model if self.model != PAPER_MODEL else ("" if self.table == "vanilla" else self.group)
        return _param_id(self.dataset, self.attention, self.loss, middle)

    @property
    def id(self) -> str:
        """The case id: ``<table>[<dataset>-<group>-<AE|AR>-<loss>]`` (no group for the paper's Table 4)."""
        return f"{self.table}[{self.param_id}]"


def _param_id(dataset: str, attention: str, loss: str, group: str) -> str:
    return f"{dataset}-{group + '-' if group else ''}{attention}-{loss}"


def case_id(table: str, dataset: str, attention: str, loss: str, variant: str = "") -> str:
    """The id of a case given its parts (``variant`` "": none, as Table 4's paper model)."""
    return f"{table}[{_param_id(dataset, attention, loss, variant)}]"
