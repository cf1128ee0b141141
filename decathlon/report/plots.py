"""Figures of a collected run (PNG, readable without the code), all under <out>/plots/.

- accuracy_<table>.png: per-domain top-1 accuracy, grouped bars per method (s.e. bars).
- policy_<table>_<variant>.png: SpotTune's policy, domain x residual block (any number of
  blocks: ResNet-26's 12, a ViT's or a ResNet-50's), the fraction of images taking the
  fine-tuned block (mean over seeds), one per variant with usage (a variant is one backbone);
  policy_<table>_compare.png: the argmax policies of every SpotTune variant side by side
  (per-domain spottune beside spottune_joint), where there are several.
- <method>_layers_<preset>-<protocol>_<variant>.png: which layers a method that gates them
  (TAPS) tuned, domain x layer, the fraction of seeds tuning it (taps_layers_*.png).
- s_vs_par_<table>.png: S against #par per method; published rows as squares (real test).
  One figure per table, so per track: the open track's (<table> ends '-open-<split>') never
  shares axes with the closed track's, and every title names its track.
- s_vs_flops_<table>.png: S against inference GFLOPs per image (the cost column), per method
  that recorded its cost.
- curves_<preset>-<protocol>-<variant>.png: one grid per method variant, a row per domain:
  train loss and val/test accuracy per epoch, a line per seed (pretraining included).
<table> is the leaderboard's identity (e.g. synthetic-cpu_demo-train-val). Figures are
drawn on matplotlib's object API (no pyplot state, no GUI backend needed).
"""
from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from decathlon.report.collection import Collection
from decathlon.data import PAPER_ORDER, get_domain
from decathlon.report.leaderboard import Leaderboard, leaderboards
from decathlon.report.submissions import slug
from decathlon.report.tracks import OPEN
from decathlon.files import write_bytes_atomic

PLOTS_DIR = "plots"


def _save(fig: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return write_bytes_atomic(path, buffer.getvalue())


def _data_label(synthetic: bool) -> str:
    return "SYNTHETIC" if synthetic else "real"


def plot_accuracy(board: Leaderboard, path: Path) -> Path:
    cells = board.cells[board.cells["source"] == "ours"]
    domains = [d for d in PAPER_ORDER if d in set(cells["metric"])]
    methods = board.methods("ours")
    # Width grows gently with the number of bars; the legend goes below, in columns.
    fig = Figure(figsize=(min(16.0, max(8.0, 0.12 * len(domains) * len(methods) + 4)), 6.0))
    ax = fig.add_subplot()
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        mine = cells[cells["method"] == method].set_index("metric").reindex(domains)
        errors = np.where(mine["n"].fillna(0).to_numpy() > 1, mine["se"].fillna(0), 0.0)
        ax.bar(np.arange(len(domains)) + (i - (len(methods) - 1) / 2) * width, mine["mean"], width,
               yerr=errors, capsize=3, label=method)
    ax.set_xticks(np.arange(len(domains)), [get_domain(d).short for d in domains])
    ax.set_ylim(0, 100)
    ax.set_xlabel("domain")
    ax.set_ylabel(f"top-1 accuracy on {board.split} (%)")
    ax.set_title(f"{board.title}\nper-domain accuracy, mean ± s.e. over seeds (bars only when n > 1)")
    ax.legend(title="method", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(4, len(methods)),
              fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _policy_grid(usage: pd.DataFrame) -> pd.DataFrame:
    grid = usage.pivot_table(index="domain", columns="block", values="fraction", aggfunc="mean")
    return grid.reindex([d for d in PAPER_ORDER if d in grid.index])


def _policy_panel(ax, grid: pd.DataFrame, title: str,
                  xlabel: str = "residual block (1 = the backbone's first)"):
    image = ax.imshow(grid.to_numpy(), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    fontsize = 8 if grid.shape[1] <= 24 else 5   # a deep backbone's many blocks: smaller numbers
    for (row, col), value in np.ndenumerate(grid.to_numpy()):
        if not np.isnan(value):
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=fontsize,
                    color="white" if value < 0.5 else "black")
    ax.set_xticks(range(grid.shape[1]), [str(b) for b in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [get_domain(d).short for d in grid.index])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("domain")
    ax.set_title(title)
    return image


def plot_policy(usage: pd.DataFrame, title: str, path: Path) -> Path:
    """usage: rows of Collection.policy for one variant and split."""
    grid = _policy_grid(usage)
    fig = Figure(figsize=(min(40.0, max(8.0, 1.5 + 0.62 * grid.shape[1])), 2.0 + 0.5 * grid.shape[0]))
    ax = fig.add_subplot()
    fig.colorbar(_policy_panel(ax, grid, title), ax=ax, label="fraction fine-tuned (0 to 1)")
    return _save(fig, path)


def plot_layers(layers: pd.DataFrame, title: str, path: Path) -> Path:
    """layers: rows of Collection.layers for one variant; the fraction of seeds that tuned
    each layer of each domain (1: always, 0: shared with the backbone)."""
    grid = _policy_grid(layers.rename(columns={"layer": "block", "tuned": "fraction"}))
    fig = Figure(figsize=(max(8.0, 1.5 + 0.45 * grid.shape[1]), 2.0 + 0.5 * grid.shape[0]))
    ax = fig.add_subplot()
    image = _policy_panel(ax, grid, title, "gated layer (1 = the stem convolution, input first)")
    fig.colorbar(image, ax=ax, label="fraction of seeds tuning the layer (0 to 1)")
    return _save(fig, path)


def plot_policy_comparison(usages: dict, title: str, path: Path) -> Path:
    """usages: {variant: its rows of Collection.policy}, one split; a panel per variant."""
    grids = {variant: _policy_grid(usage) for variant, usage in usages.items()}
    rows = max(grid.shape[0] for grid in grids.values())
    fig = Figure(figsize=(7.5 * len(grids), 2.4 + 0.5 * rows), layout="constrained")
    axes = fig.subplots(1, len(grids), squeeze=False)[0]
    for ax, (variant, grid) in zip(axes, grids.items()):
        image = _policy_panel(ax, grid, textwrap.fill(variant, 60))
    fig.colorbar(image, ax=list(axes), label="fraction fine-tuned (0 to 1)")
    fig.suptitle(title)
    return _save(fig, path)


def plot_s_vs_par(board: Leaderboard, path: Path) -> Path:
    return _plot_s_against(board, "#par", "#par (multiples of the row's own backbone; ResNet-26 for resnet26 "
                                          "and published rows)", "model size", path)


def plot_s_vs_flops(board: Leaderboard, path: Path) -> Path:
    return _plot_s_against(board, "gflops_per_image", "inference GFLOPs per image (mean over the domains)",
                           "inference FLOPs", path)


def _plot_s_against(board: Leaderboard, metric: str, xlabel: str, what: str, path: Path) -> Path:
    """S against one of the table's metrics, a point per method that has both."""
    fig = Figure(figsize=(8, 5.5))
    ax = fig.add_subplot()
    for source, marker, colour in (("ours", "o", "tab:blue"), ("published", "s", "tab:gray")):
        for method in board.methods(source):
            x, y = board.value(method, metric), board.value(method, "S")
            if np.isnan(x) or np.isnan(y):
                continue
            se = board.value(method, "S", "se")
            ax.errorbar(x, y, yerr=0.0 if np.isnan(se) else se, fmt=marker, color=colour, capsize=3,
                        label="this run (mean ± s.e. over seeds)" if source == "ours" else "published (test)")
            ax.annotate(method, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), loc="best")
    ax.margins(0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("S (1000 points per scored domain at most)")
    ax.set_title(f"{board.title}\nDecathlon score S against {what}")
    ax.grid(alpha=0.3)
    fig.text(0.01, -0.02, textwrap.fill(board.baseline, 110), fontsize=8, va="top")
    return _save(fig, path)


def _has_both(board: Leaderboard, *metrics) -> bool:
    """Whether some method of the table has a value for each of `metrics`."""
    have = board.cells.groupby("method")["metric"].agg(set)
    return any(set(metrics) <= found for found in have)


def _short(label: str) -> str:
    """'svhn' -> 'SVHN'; a joint job's 'dtd+svhn' -> 'DTD+SVHN'."""
    return "+".join(get_domain(name).short for name in label.split("+"))


def plot_curves(curves: pd.DataFrame, title: str, path: Path) -> Path:
    """curves: rows of Collection.curves for one variant (every domain, or joint job, and seed)."""
    labels = set(curves["domain"])
    domains = [d for d in PAPER_ORDER if d in labels] + sorted(labels - set(PAPER_ORDER))
    seeds = sorted(curves["seed"].unique())
    fig = Figure(figsize=(11, 1.4 + 2.6 * len(domains)), layout="constrained")  # keeps titles apart
    axes = fig.subplots(len(domains), 2, squeeze=False)
    for row, domain in enumerate(domains):
        loss_ax, acc_ax = axes[row]
        for i, seed in enumerate(seeds):
            job = curves[(curves["domain"] == domain) & (curves["seed"] == seed)].sort_values("epoch")
            colour = f"C{i % 10}"
            loss_ax.plot(job["epoch"], pd.to_numeric(job["train_loss"]), color=colour, marker=".",
                         label=f"seed {seed}")
            if "val_accuracy" in job:   # never monitored on test; not at all under trainval
                accuracy = pd.to_numeric(job["val_accuracy"]) * 100
                if accuracy.notna().any():
                    acc_ax.plot(job["epoch"], accuracy, color=colour, marker=".", label=f"seed {seed}, val")
        loss_ax.set_ylabel(f"{_short(domain)}\ntrain loss")
        acc_ax.set_ylabel("top-1 accuracy (%)")
        for ax in (loss_ax, acc_ax):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        if row == 0:
            loss_ax.set_title("training loss (mean over the epoch)")
            acc_ax.set_title("accuracy after the epoch (val)")
            loss_ax.legend(fontsize=8)
            if acc_ax.lines:
                acc_ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def _table(synthetic: bool, preset: str, protocol: str, track: str, split: str) -> str:
    """The table identity in a policy plot's name, as Leaderboard.slug spells it."""
    return f"{'synthetic-' if synthetic else ''}{preset}-{protocol}{'-open' if track == OPEN else ''}-{split}"


def write_plots(collection: Collection, out_dir) -> list:
    """Write every figure into out_dir/plots; returns their paths."""
    folder = Path(out_dir) / PLOTS_DIR
    written = []
    for board in leaderboards(collection):
        written.append(plot_accuracy(board, folder / f"accuracy_{board.slug}.png"))
        if (board.cells["metric"] == "S").any():
            written.append(plot_s_vs_par(board, folder / f"s_vs_par_{board.slug}.png"))
        if _has_both(board, "S", "gflops_per_image"):
            written.append(plot_s_vs_flops(board, folder / f"s_vs_flops_{board.slug}.png"))
    keys = ["synthetic", "preset", "protocol", "track", "split", "variant"]
    for (synthetic, preset, protocol, track, split, variant), usage in collection.policy.groupby(keys, sort=True):
        title = (f"{_data_label(synthetic)} data · preset {preset} · protocol {protocol} · split {split} · "
                 f"{track} track\n{variant}: fraction of images taking the fine-tuned block\n"
                 f"(mean over {usage['seed'].nunique()} seed(s))")
        name = f"policy_{_table(synthetic, preset, protocol, track, split)}_{slug(variant)}.png"
        written.append(plot_policy(usage, title, folder / name))
    for (synthetic, preset, protocol, track, split), usage in collection.policy.groupby(keys[:5], sort=True):
        argmax = {variant: rows for variant, rows in usage.groupby("variant", sort=True) if "eval argmax" in variant}
        if len(argmax) > 1:
            title = (f"{_data_label(synthetic)} data · preset {preset} · protocol {protocol} · split {split} · "
                     f"{track} track: fraction of images taking the fine-tuned block (mean over seeds)")
            name = f"policy_{_table(synthetic, preset, protocol, track, split)}_compare.png"
            written.append(plot_policy_comparison(argmax, title, folder / name))
    for (synthetic, preset, protocol, method, variant), layers in collection.layers.groupby(
            ["synthetic", "preset", "protocol", "method", "variant"], sort=True):
        title = (f"{_data_label(synthetic)} data · preset {preset} · protocol {protocol}\n"
                 f"{variant}: layers tuned (1) or shared with the backbone (0), mean over "
                 f"{layers['seed'].nunique()} seed(s)")
        name = f"{method}_layers_{'synthetic-' if synthetic else ''}{preset}-{protocol}_{slug(variant)}.png"
        written.append(plot_layers(layers, title, folder / name))
    for (synthetic, preset, protocol, variant), curves in collection.curves.groupby(
            ["synthetic", "preset", "protocol", "variant"], sort=True):
        title = (f"{_data_label(synthetic)} data · {variant} · preset {preset} · protocol {protocol}: "
                 "training curves per domain")
        name = f"curves_{'synthetic-' if synthetic else ''}{preset}-{protocol}-{slug(variant)}.png"
        written.append(plot_curves(curves, title, folder / name))
    return written
