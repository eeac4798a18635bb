"""The most transferable source of a sample of targets, from the top-k rows of a sparse estimate (ce.csv):
a table ("Dog <- Carnivore, 0.02 nats") and a bar chart, so a reader sees the taxonomy the labels imply."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .figures import save


def sample_best(ce: pd.DataFrame, n: int = 16) -> pd.DataFrame:
    """Rank-1 rows of `n` targets spread evenly over how often the target is labelled present, most first.

    `ce`: rows with target, source, ce, rank, n, target_entropy, target_name, source_name, target_present."""
    best = ce[ce["rank"] == 1].sort_values(["target_present", "target"], ascending=[False, True])
    if len(best) <= n:
        return best.reset_index(drop=True)
    pick = np.unique(np.linspace(0, len(best) - 1, n).round().astype(int))
    return best.iloc[pick].reset_index(drop=True)


def markdown(best: pd.DataFrame) -> str:
    lines = ["| target | most transferable source | H(target given source), nats | H(target), nats "
             "| images labelled for both | target present on |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in best.itertuples():
        lines.append(f"| {r.target_name} | {r.source_name} | {r.ce:.4f} | {r.target_entropy:.4f} | {r.n:,} "
                     f"| {r.target_present:,} |")
    return "\n".join(lines) + "\n"


def best_sources_figure(best: pd.DataFrame, title: str) -> Figure:
    """One bar pair per target: H(target) and H(target | its best source); the label names both."""
    fig = Figure(figsize=(9, 0.45 * len(best) + 1.5))
    ax = fig.add_subplot()
    y = np.arange(len(best))[::-1]
    ax.barh(y + 0.2, best["target_entropy"], height=0.4, color="lightgrey", label="H(target)")
    ax.barh(y - 0.2, best["ce"], height=0.4, color="tab:blue", label="H(target | best source)")
    ax.set_yticks(y, [f"{t} <- {s}" for t, s in zip(best["target_name"], best["source_name"])], fontsize=7)
    ax.set_xlabel("nats")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def write(best: pd.DataFrame, title: str, md_path, png_path) -> None:
    from .. import io

    io.write_text(md_path, f"# {title.replace(chr(10), ' ')}\n\n" + markdown(best))
    save(best_sources_figure(best, title), png_path)
