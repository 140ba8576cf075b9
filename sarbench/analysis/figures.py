"""Figures 1, 2, 3 and 5 of the paper, drawn from trained models (matplotlib, PNG and PDF).

- :func:`figure_attention` (Figure 1): attention heat-maps of Vanilla-AE, Local-AE and Vanilla-AR
  for one test user, per layer and head, cropped to the user's real positions.
- :func:`figure_low_rank` (Figure 2): the same matrices beside their rank-5 truncated SVD and their
  hard-threshold rank-k truncated SVD (k from the paper's noise-based rule).
- :func:`figure_spectra` (Figure 3): sorted singular values (indices 0-20) per layer and head, AE
  vs AR, for one user and averaged over the analysed users, per dataset.
- :func:`figure_locality` (Figure 5): test NDCG@10 of the three models against two locality
  measures (relative attention distance and L1/L2 sparsity), per dataset.

Every function takes plain arrays and frames (nothing is trained here), writes ``<stem>.png`` and
``<stem>.pdf`` into ``out_dir`` and returns the two paths. The figures are built with
``matplotlib.figure.Figure`` directly, so no pyplot state or interactive backend is involved, and
laid out by hand (constrained layout was several times slower on a loaded machine).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .measures import hard_threshold_rank
from .study import MODELS, SIGMA, SPECTRUM_K

log = logging.getLogger(__name__)

__all__ = ["figure_attention", "figure_low_rank", "figure_spectra", "figure_locality", "truncated_svd",
           "save_figure"]

MODEL_TITLES = {"vanilla-AE": "Vanilla-AE (bidirectional)", "local-AE": "Local-AE (last head: |i-j| <= 2)",
                "vanilla-AR": "Vanilla-AR (causal)"}
SHORT = {"vanilla-AE": "V-AE", "local-AE": "L-AE", "vanilla-AR": "V-AR"}
MODEL_MARKERS = {"vanilla-AE": "o", "local-AE": "s", "vanilla-AR": "^"}
CMAP = "viridis"
GAMMA = 0.5
CBAR_LABEL = "attention weight (square-root scale)"


def _colorbar(fig: Figure, im, axes, vmax: float, **kw):
    """A colour bar with ticks evenly spaced on the square-root scale (0, 1/16, 1/4, 9/16, 1 of vmax)."""
    ticks = [vmax * f ** (1 / GAMMA) for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
    bar = fig.colorbar(im, ax=axes, ticks=ticks, label=CBAR_LABEL, **kw)
    labels = [f"{t:.2g}" for t in ticks]
    if kw.get("location") == "bottom":
        bar.ax.set_xticklabels(labels)
    else:
        bar.ax.set_yticklabels(labels)
    bar.ax.tick_params(labelsize=7)
    return bar


def _norm(vmax: float) -> PowerNorm:
    """Square-root colour scale from 0 to ``vmax``: small weights stay visible next to a few large
    ones (a causal first row always holds a 1). Values outside the range take the end colours."""
    return PowerNorm(GAMMA, vmin=0.0, vmax=vmax, clip=True)

#: Attention of one user per model: ``{model label: (attn (layers, heads, n, n), position labels)}``.
UserMaps = Mapping[str, tuple[np.ndarray, Sequence[str]]]


def save_figure(fig: Figure, out_dir: str | os.PathLike, stem: str, dpi: int = 130) -> list[Path]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=dpi)
    fig.savefig(paths[1])
    log.info("figure written: %s (.png, .pdf)", out / stem)
    return paths


def _head_title(label: str, layer: int, head: int, heads: int) -> str:
    local = label == "local-AE" and head == heads - 1
    return f"layer {layer}, head {head}" + (" (local)" if local else "")


def _ticks(ax, labels: Sequence[str]) -> None:
    n = len(labels)
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100) if n / s <= 6)
    idx = list(range(0, n, step))
    if n - 1 - idx[-1] >= step / 2:
        idx.append(n - 1)  # the last position (the [MASK] of an AE input) when it is not too close
    elif idx[-1] != n - 1:
        idx[-1] = n - 1
    ax.set_xticks(idx, [labels[i] for i in idx], fontsize=7)
    ax.set_yticks(idx, [labels[i] for i in idx], fontsize=7)


def _check_maps(maps: UserMaps) -> None:
    if not maps:
        raise ValueError("no attention maps to draw")
    for label, (attn, labels) in maps.items():
        a = np.asarray(attn)
        if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
            raise ValueError(f"{label}: attention must have shape (layers, heads, n, n), got {a.shape}")
        if len(labels) != a.shape[-1]:
            raise ValueError(f"{label}: {len(labels)} position labels for {a.shape[-1]} positions")


def figure_attention(maps: UserMaps, *, dataset: str, user: int, out_dir: str | os.PathLike,
                     stem: str = "fig1_attention", note: str = "") -> list[Path]:
    """Figure 1: one heat-map per (model, layer, head) of one user's cropped attention.

    Rows are the models, columns the (layer, head) pairs. Each row shares one square-root colour
    scale (0 to the row's largest weight), shown by the colour bar at its right.
    """
    _check_maps(maps)
    labels_order = [m for m in MODELS if m in maps] + [m for m in maps if m not in MODELS]
    cols = max(np.asarray(maps[m][0]).shape[0] * np.asarray(maps[m][0]).shape[1] for m in labels_order)
    rows = len(labels_order)
    height = 3.0 * rows + 1.3
    fig = Figure(figsize=(3.1 * cols + 1.3, height))
    fig.subplots_adjust(left=0.06, right=0.93, bottom=0.45 / height, top=1 - 1.35 / height, wspace=0.35, hspace=0.45)
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, label in enumerate(labels_order):
        attn, pos = maps[label]
        attn = np.asarray(attn)
        layers, heads = attn.shape[:2]
        vmax = float(attn.max()) or 1.0
        im = None
        for c in range(cols):
            ax = axes[r, c]
            if c >= layers * heads:
                ax.set_axis_off()
                continue
            layer, head = divmod(c, heads)
            im = ax.imshow(attn[layer, head], cmap=CMAP, norm=_norm(vmax), interpolation="nearest")
            ax.set_title(f"{label}: {_head_title(label, layer, head, heads)}", fontsize=9)
            _ticks(ax, pos)
            ax.set_xlabel("key position j", fontsize=8)
            ax.set_ylabel("query position i", fontsize=8)
        _colorbar(fig, im, list(axes[r, :]), vmax, fraction=0.02, pad=0.015)
    sizes = ", ".join(f"{m} {len(maps[m][1])}" for m in labels_order)
    fig.suptitle(
        f"Figure 1: attention of one test user ({dataset}, user {user}) per layer and head, cropped to the "
        f"real positions ({sizes})\nrows: " + ", ".join(MODEL_TITLES.get(m, m) for m in labels_order)
        + "\npositions: 0 = oldest item, M = the [MASK] an AE model predicts from; brighter = more attention; "
        "one square-root colour scale per row" + (f"\n{note}" if note else ""),
        fontsize=10)
    return save_figure(fig, out_dir, stem)


def truncated_svd(a: np.ndarray, k: int) -> np.ndarray:
    """The rank-``k`` truncated SVD ``U_k S_k V_k^T`` of a square matrix (``k`` clipped to 0..n).

    Example:
        >>> import numpy as np
        >>> a = np.diag([3.0, 2.0, 1.0])
        >>> truncated_svd(a, 2).round(12).tolist()
        [[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]
    """
    a = np.asarray(a, dtype=np.float64)
    u, s, vh = np.linalg.svd(a)
    k = max(0, min(int(k), len(s)))
    return (u[:, :k] * s[:k]) @ vh[:k]


def figure_low_rank(maps: UserMaps, *, dataset: str, user: int, out_dir: str | os.PathLike, k: int = 5,
                    sigma: float = SIGMA, seed: int = 0, stem: str = "fig2_low_rank", note: str = "") -> list[Path]:
    """Figure 2: each model's matrices (last head of every layer) above their low-rank approximations.

    Rows: the original attention; its rank-``k`` truncated SVD (the paper shows k = 5); its
    hard-threshold approximation, the truncated SVD at the rank the paper's noise rule gives
    (:func:`sarbench.analysis.hard_threshold_rank` with ``sigma``; the rank is in the panel title).
    Columns share the original's square-root colour scale (0 to its largest weight);
    approximation entries outside it (an SVD truncation can go negative) take the end colours.
    """
    _check_maps(maps)
    gen = np.random.default_rng(seed)
    labels_order = [m for m in MODELS if m in maps] + [m for m in maps if m not in MODELS]
    columns = []
    for label in labels_order:
        attn, pos = maps[label]
        attn = np.asarray(attn, dtype=np.float64)
        heads = attn.shape[1]
        for layer in range(attn.shape[0]):
            columns.append((label, layer, heads - 1, heads, attn[layer, heads - 1], pos))
    fig = Figure(figsize=(2.7 * len(columns) + 0.8, 10.0))
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.04, top=0.86, wspace=0.3, hspace=0.45)
    axes = fig.subplots(3, len(columns), squeeze=False)
    for c, (label, layer, head, heads, a, pos) in enumerate(columns):
        res = hard_threshold_rank(a, sigma, gen)
        rows = [(a, f"{label}\n{_head_title(label, layer, head, heads)}\noriginal (n = {len(a)})"),
                (truncated_svd(a, k), f"rank-{k} SVD"),
                (res.A_hat, f"hard threshold: rank {res.k}")]
        vmax = float(a.max()) or 1.0
        im = None
        for r, (m, title) in enumerate(rows):
            ax = axes[r, c]
            im = ax.imshow(m, cmap=CMAP, norm=_norm(vmax), interpolation="nearest")
            ax.set_title(title, fontsize=8)
            _ticks(ax, pos)
            if c == 0:
                ax.set_ylabel("query position i", fontsize=8)
            if r == 2:
                ax.set_xlabel("key position j", fontsize=8)
        _colorbar(fig, im, list(axes[:, c]), vmax, location="bottom", fraction=0.03, pad=0.06, aspect=15)
    fig.suptitle(
        f"Figure 2: attention of one test user ({dataset}, user {user}) and its low-rank approximations\n"
        f"top: original; middle: best rank-{k} approximation (truncated SVD); bottom: truncated SVD at the "
        f"hard-threshold rank (paper Eqs. 7-10, sigma = {sigma:g})" + (f"\n{note}" if note else ""),
        fontsize=10)
    return save_figure(fig, out_dir, stem)


def figure_spectra(spectra: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], *,
                   out_dir: str | os.PathLike, users: Mapping[str, int] | None = None,
                   stem: str = "fig3_singular_values", note: str = "") -> list[Path]:
    """Figure 3: sorted singular values per (layer, head), Vanilla-AE vs Vanilla-AR, per dataset.

    Args:
        spectra: ``{dataset: {model label: (one user's spectrum (layers, heads, K),
            mean spectrum over the analysed users (layers, heads, K))}}``; AE models are drawn in blue
            shades, AR in red, one line style per layer.
        users: the user index shown per dataset (for the titles).
    """
    if not spectra:
        raise ValueError("no spectra to draw")
    height = 4.0 * len(spectra) + 1.2
    fig = Figure(figsize=(12, height))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.55 / height, top=1 - 1.0 / height, wspace=0.2,
                        hspace=0.45)
    axes = fig.subplots(len(spectra), 2, squeeze=False)
    styles = ["-", "--", ":", "-."]
    for r, (dataset, per_model) in enumerate(spectra.items()):
        for c, which in enumerate(("one user", "mean over users")):
            ax = axes[r, c]
            for label, (one, mean) in per_model.items():
                s = np.asarray(one if c == 0 else mean)
                layers, heads, k = s.shape
                ae = "AE" in label
                shades = ["tab:blue", "tab:cyan", "navy", "tab:purple"] if ae else ["tab:red", "tab:orange",
                                                                                   "darkred", "tab:pink"]
                for layer in range(layers):
                    for head in range(heads):
                        name = f"{label} layer {layer}" + (f" head {head}" if heads > 1 else "")
                        ax.plot(np.arange(k), s[layer, head], styles[layer % len(styles)],
                                color=shades[head % len(shades)], marker=".", markersize=4, label=name)
            user = f" (user {users[dataset]})" if users and dataset in users else ""
            ax.set_title(f"{dataset}: {which}{user if c == 0 else ''}", fontsize=10)
            ax.set_xlabel("singular value index (descending order)")
            ax.set_ylabel("singular value")
            ax.set_xlim(-0.5, SPECTRUM_K - 0.5)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
    fig.suptitle(
        "Figure 3: sorted singular values of the attention matrices, Vanilla-AE vs Vanilla-AR\n"
        "a slower decay means more large singular values (the paper: AR decays more slowly, so it needs a "
        "higher rank)" + (f"\n{note}" if note else ""), fontsize=10)
    return save_figure(fig, out_dir, stem)


def figure_locality(frame: pd.DataFrame, *, out_dir: str | os.PathLike, stem: str = "fig5_locality",
                    note: str = "") -> list[Path]:
    """Figure 5: test NDCG@10 against locality, for the three models on every dataset.

    ``frame`` holds :func:`sarbench.analysis.summary_frame` rows (``model, dataset,
    rel_distance, sparsity, N@10``). Left: against the relative attention distance (mean ``|i - j|``
    under the attention divided by the number of positions; smaller = more local), which compares
    across datasets of different lengths. Right: against the L1/L2 sparsity (log scale; smaller =
    sparser). Both x axes are reversed, so locality grows to the right as on the paper's axis.
    NDCG@10 is on a log scale, so equal vertical steps are equal ratios on every dataset; an NDCG@10
    of 0 is drawn as a hollow marker on the bottom edge. The paper's claim is that performance grows
    with locality.
    """
    need = {"model", "dataset", "rel_distance", "sparsity", "N@10"}
    if not need <= set(frame.columns):
        raise ValueError(f"frame lacks column(s) {', '.join(sorted(need - set(frame.columns)))}")
    if frame.empty:
        raise ValueError("no rows to draw")
    positive = frame.loc[frame["N@10"] > 0, "N@10"]
    floor = float(positive.min()) / 2 if len(positive) else 1e-4
    fig = Figure(figsize=(14, 6.0))
    fig.subplots_adjust(left=0.06, right=0.72, bottom=0.16, top=0.84, wspace=0.25)
    axes = fig.subplots(1, 2)
    colours = [f"C{i}" for i in range(10)]
    handles = []
    zeros = False
    for i, (dataset, rows) in enumerate(frame.groupby("dataset", sort=False)):
        rows = rows.set_index("model")
        order = [m for m in MODELS if m in rows.index] + [m for m in rows.index if m not in MODELS]
        y = rows["N@10"].clip(lower=floor)
        colour = colours[i % len(colours)]
        for ax, x in zip(axes, ("rel_distance", "sparsity")):
            ax.plot(rows.loc[order, x], y[order], "-", color=colour, alpha=0.5)
            for m in order:
                zero = not rows.loc[m, "N@10"] > 0
                zeros |= zero
                ax.plot(rows.loc[m, x], y[m], MODEL_MARKERS.get(m, "o"), color=colour, markersize=9,
                        markerfacecolor="none" if zero else colour)
        absolute = ", ".join(f"{SHORT[m]} {rows.loc[m, 'N@10']:.3f}" for m in order if m in SHORT)
        handles.append(Line2D([], [], color=colour, label=f"{dataset} ({absolute})"))
    handles += [Line2D([], [], color="grey", linestyle="", marker=MODEL_MARKERS[m], markersize=8, label=m)
                for m in MODELS]
    axes[0].set_xlabel("relative attention distance: mean |i - j| under the attention / number of positions\n"
                       "(smaller = more local)")
    axes[1].set_xlabel("L1/L2 sparsity of the attention (log scale; smaller = sparser)")
    axes[1].set_xscale("log")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_ylabel("test NDCG@10 (log scale)")
        ax.invert_xaxis()  # more local / sparser to the right, as the paper's "locality grows" axis
        ax.grid(alpha=0.3, which="both")
    axes[0].set_title("performance vs attention distance (locality grows to the right)", fontsize=9)
    axes[1].set_title("performance vs sparsity (sparsity grows to the right)", fontsize=9)
    fig.legend(handles=handles, loc="center right", fontsize=8,
               title="dataset (absolute NDCG@10: V-AE, L-AE, V-AR)", title_fontsize=8)
    text = "Figure 5: does performance grow with local attention? Vanilla-AE, Local-AE, Vanilla-AR per dataset"
    if zeros:
        text += f"\nhollow markers: NDCG@10 = 0, drawn at {floor:.1g}"
    fig.suptitle(text + (f"\n{note}" if note else ""), fontsize=10, x=0.39)
    return save_figure(fig, out_dir, stem)
