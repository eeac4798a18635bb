"""Figures: files are written, and what titles claim matches the data actually plotted."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection

from transferability.analysis import figures
from transferability.analysis.matrix import correlate, correlations
from transferability.analysis.ranking import estimator_comparison
from transferability.analysis.tables import fraction_curves, table1


def scatter_points(ax) -> np.ndarray:
    pts = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(pts) == 1
    return np.asarray(pts[0].get_offsets())


def title_r_p(ax) -> tuple[float, float]:
    m = re.search(r"r=(-?[\d.]+) p=([\d.e+-]+)", ax.get_title())
    return float(m.group(1)), float(m.group(2))


def matrix_rows(n_sources=3, n_targets=9, seed=0):
    rng = np.random.default_rng(seed)
    names = [f"s{i}" for i in range(n_sources)]
    targets = [f"t{i}" for i in range(n_targets)]
    out = []
    for k, s in enumerate(names):
        ce = rng.uniform(0, 0.7, n_targets)
        slope = 0.5 - 0.35 * k   # later sources: weaker (even negative) relation
        err = np.clip(0.1 + slope * ce + rng.normal(0, 0.03, n_targets), 0, 1)
        out.append(pd.DataFrame({"source": s, "target": targets + [s], "ce": list(ce) + [0.0],
                                 "test_error": list(err) + [0.02]}))
    rows = pd.concat(out, ignore_index=True)
    rows["test_accuracy"] = 1 - rows["test_error"]
    rows["dedicated"] = rows.source == rows.target
    return rows


def test_fig2_titles_and_points_match_data(tmp_path):
    rows = matrix_rows()
    corr = correlations(rows)
    sources = figures.select_sources(corr)
    assert sources == list(corr[corr.scope != "pooled"].sort_values("pearson_r", ascending=False).scope)
    fig = figures.fig2_figure(rows, sources, "demo")
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert len(axes) == 3
    for ax, s in zip(axes, sources):
        assert ax.get_title().startswith(s)
        pts = scatter_points(ax)
        assert len(pts) == 9   # every target but the dedicated cell
        r, p = title_r_p(ax)
        c = correlate(*pts.T)
        assert r == pytest.approx(corr.set_index("scope").at[s, "pearson_r"], abs=5e-4)
        assert r == pytest.approx(c["pearson_r"], abs=5e-4)
        assert p == pytest.approx(c["pearson_p"], rel=0.06)
        assert any(isinstance(c, PolyCollection) for c in ax.collections)   # the 95% band
    path = figures.fig2(rows, sources, tmp_path / "fig2.png", "demo")
    assert path.exists() and path.stat().st_size > 1000


def test_fig2_many_sources_shows_every_source_and_says_so():
    """Reported fault: Fig. 2 showed 8 of 21 sources without saying which or why."""
    rows = matrix_rows(n_sources=21, n_targets=6)
    corr = correlations(rows)
    chosen = figures.select_sources(corr)
    per = corr[corr.scope != "pooled"]
    ranked = list(per.sort_values(["pearson_r", "scope"], ascending=[False, True]).scope)
    assert chosen == ranked
    fig = figures.fig2_figure(rows, chosen, "demo")
    assert len([ax for ax in fig.axes if ax.axison]) == 21
    assert "all 21 sources, sorted by Pearson r" in fig._suptitle.get_text()
    some = figures.select_sources(corr, max_panels=12)
    defined = [s for s in ranked if np.isfinite(per.set_index("scope").at[s, "pearson_r"])]
    assert some == defined[:4] + defined[-4:]
    assert "8 of 21 sources (highest and lowest Pearson r)" in figures.fig2_figure(rows, some)._suptitle.get_text()


def test_bands_stay_in_0_1_and_extreme_points_are_named():
    """Reported fault: the confidence bands of Figs. 2 and 6 went below 0 error."""
    hard = pd.DataFrame({"task": list("abcdefgh"), "hardness": [0.01, 0.02, 0.03, 0.3, 0.5, 0.6, 0.65, 0.69],
                         "dedicated_test_error": [0.0, 0.0, 0.01, 0.2, 0.3, 0.05, 0.45, 0.5]})
    ax = figures.fig6_figure(hard, "demo").axes[0]
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    y = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
    assert y.min() >= 0 and y.max() <= 1
    assert all(0 <= v <= 1 for ln in ax.lines for v in ln.get_ydata())
    names = {t.get_text() for t in ax.texts}
    assert {"a", "h", "b", "g"} <= names and len(names) < len(hard)   # extremes of both axes, not all

    rows = matrix_rows(n_sources=2, n_targets=9)
    ax = figures.fig2_figure(rows, ["s0", "s1"]).axes[0]
    g = rows[(rows.source == "s0") & (rows.target != "s0")]
    assert g.loc[g.test_error.idxmax(), "target"] in {t.get_text() for t in ax.texts}


def _fits_in_figure(fig, text) -> bool:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = text.get_window_extent(canvas.get_renderer())
    return box.x0 >= 0 and box.x1 <= fig.bbox.x1


@pytest.mark.parametrize("shape", [(10, 1), (2, 1), (3, 2)])
def test_narrow_heatmap_title_fits(shape):
    """Reported fault: one- and two-column heatmaps cut their titles."""
    h, w = shape
    m = pd.DataFrame(np.random.default_rng(0).uniform(0, 0.6, shape), index=[f"target_{i}" for i in range(h)],
                     columns=[f"s{j}" for j in range(w)])
    fig = figures.ce_heatmap_figure(m, "celeba: H(target | source), all split, nats\n"
                                       "target=Male,Bald,Gray_Hair,Mustache,Double_Chin,Attractive,+4-abcdef12")
    assert _fits_in_figure(fig, fig._suptitle)


def test_heatmap_dominant_row_gets_its_own_scale(tmp_path):
    """Reported fault: CelebA's identity row (~8.9 nats) set the colour scale: the attributes were one dark block."""
    rng = np.random.default_rng(0)
    tasks = [f"a{i}" for i in range(40)] + ["identity"]
    values = rng.uniform(0.05, 0.69, (41, 41))
    values[-1] = rng.uniform(8.5, 9.0, 41)
    np.fill_diagonal(values, 0)
    m = pd.DataFrame(values, index=tasks, columns=tasks)
    fig = figures.ce_heatmap_figure(m, "celeba: H(target | source)")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2
    top, rest = images
    assert top.get_array().shape == (1, 41) and top.get_clim()[1] == pytest.approx(values[-1].max())
    assert rest.get_array().shape == (40, 41) and rest.get_clim()[1] == pytest.approx(values[:-1].max())
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["identity"]
    # no dominant row: one panel
    assert len([ax for ax in figures.ce_heatmap_figure(m.iloc[:-1], "x").axes if ax.images]) == 1
    assert figures.ce_heatmap(m, tmp_path / "h.png", "t").stat().st_size > 1000


def test_fig3_fig4_fig5_fig6_and_estimators(tmp_path):
    rows = matrix_rows(n_sources=1, n_targets=12)
    ded = pd.DataFrame({"source": [f"t{i}" for i in range(12)], "target": [f"t{i}" for i in range(12)],
                        "ce": 0.0, "test_error": np.linspace(0.05, 0.2, 12)})
    ded["test_accuracy"] = 1 - ded.test_error
    rows = pd.concat([rows, ded], ignore_index=True)

    fig = figures.fig3_figure(rows, "s0")
    ax = fig.axes[0]
    assert len(scatter_points(ax)) == 12 and "12 targets" in ax.get_title()
    g = rows[(rows.source == "s0") & (rows.target != "s0")]
    assert title_r_p(ax)[0] == pytest.approx(correlate(g.ce, g.test_error)["pearson_r"], abs=5e-4)
    assert figures.fig3(rows, "s0", tmp_path / "f3.png").exists()

    long = table1(rows, "s0")
    fig = figures.fig4_figure(long, "s0")
    bars = fig.axes[0].patches
    assert len(bars) == 12
    np.testing.assert_allclose([b.get_height() for b in bars], long.transfer_minus_dedicated)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(long.target)
    assert figures.fig4(long, "s0", tmp_path / "f4.png").exists()

    runs = pd.concat([rows.assign(train_fraction=1.0, n_train=100, seed=0),
                      rows.assign(train_fraction=0.1, n_train=10, seed=0, test_error=rows.test_error + 0.1)])
    runs["test_accuracy"] = 1 - runs.test_error
    curves = fraction_curves(runs, "s0", ["t0", "t3"])
    fig = figures.fig5_figure(curves, "s0")
    assert [ax.get_title() for ax in fig.axes] == ["t0", "t3"]
    for ax, t in zip(fig.axes, ["t0", "t3"]):
        curves_drawn = [c.lines[0] for c in ax.containers]   # errorbar containers: data line first
        assert [c.get_label() for c in ax.containers] == ["dedicated", "transferred from s0"]
        y = sorted(np.concatenate([ln.get_ydata() for ln in curves_drawn]))
        np.testing.assert_allclose(y, sorted(curves[curves.target == t].accuracy))
    assert figures.fig5(curves, "s0", tmp_path / "f5.png").exists()

    hard = pd.DataFrame({"task": list("abcdef"), "hardness": [0.1, 0.2, 0.4, 0.5, 0.6, 0.69],
                         "dedicated_test_error": [0.02, 0.05, 0.1, 0.2, 0.18, np.nan]})
    fig = figures.fig6_figure(hard, "demo")
    assert len(scatter_points(fig.axes[0])) == 5   # the task without a dedicated run is not drawn
    ok = hard.dropna()
    assert title_r_p(fig.axes[0])[0] == pytest.approx(correlate(ok.hardness, ok.dedicated_test_error)["pearson_r"],
                                                      abs=5e-4)
    assert figures.fig6(hard, tmp_path / "f6.png").exists()

    est_rows = matrix_rows(n_sources=3, n_targets=8).assign(nce=lambda d: -d.ce, leep=lambda d: d.test_accuracy)
    cmp_ = estimator_comparison(est_rows, n_boot=50, n_boot_source=20)
    fig = figures.estimators_figure(cmp_)
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 3 * 4   # 2 estimators and chance x 4 metrics
    sel = cmp_[(cmp_.scope == "pooled")].set_index(["estimator", "metric"])
    heights = sorted(b.get_height() for b in fig.axes[0].patches)
    np.testing.assert_allclose(heights, sorted(sel.value))
    assert figures.fig_estimators(cmp_, tmp_path / "est.png").exists()


def test_selection_figure_draws_the_defined_scores_and_chance(tmp_path):
    from transferability.analysis.selection import MEAN_OVER_TARGETS, selection_table

    rng = np.random.default_rng(0)
    rows = matrix_rows(n_sources=5, n_targets=8)
    rows = rows.assign(nce=-rows.ce, leep=rng.normal(size=len(rows)), target_entropy=rows.ce * 0 + 1.0)
    table = selection_table(rows, n_boot=50)
    mean = table[table["scope"] == MEAN_OVER_TARGETS]
    fig = figures.selection_figure(mean)
    assert len(fig.axes) == 6 and [t.get_text() for t in fig.axes[0].get_yticklabels()] == [
        "nce", "leep", "random_ranking"]                                  # target_entropy: undefined, not drawn
    tau = mean[mean.metric == "weighted_tau"].set_index("estimator")["value"]
    widths = [b.get_width() for b in fig.axes[0].patches]
    np.testing.assert_allclose(widths, [tau["nce"], tau["leep"], 0.0])
    dashed = [ln for ln in fig.axes[3].lines if ln.get_linestyle() == "--"]   # chance's recall@3
    chance = mean.set_index(["estimator", "metric"]).at[("random_ranking", "recall_at_3"), "value"]
    assert len(dashed) == 1 and dashed[0].get_xdata()[0] == pytest.approx(chance)
    assert figures.fig_selection(mean, tmp_path / "sel.png").exists()


def test_multiclass_target_panels_one_point_per_source():
    from transferability.analysis.figures import fig2_multiclass_targets_figure

    pairs = pd.DataFrame({"source": ["a", "b", "c", "a", "b", "c"], "target": ["m"] * 3 + ["n"] * 3,
                          "ce": [1.0, 1.2, 1.5, 0.9, 1.1, 1.3], "test_error": [0.1, 0.2, 0.3, 0.2, 0.1, 0.3]})
    fig = fig2_multiclass_targets_figure(pairs, "d")
    axes = [ax for ax in fig.axes if ax.axison]
    assert len(axes) == 2 and all(len(ax.collections[0].get_offsets()) == 3 for ax in axes)
    assert axes[0].get_title().startswith("-> m (3 sources)")


def test_widths_figure_gives_each_estimator_one_colour_in_both_panels():
    rows = [dict(D=d, estimator=e, metric=m, median=0.5, ci_low=0.4, ci_high=0.6)
            for d in (2, 8) for e in ("nce", "logme", "target_entropy", "majority_error")
            for m in ("r", "partial_r_given_entropy") if not (e == "target_entropy" and m != "r")]
    fig = figures.widths_figure(pd.DataFrame(rows), ["nce", "logme", "target_entropy", "majority_error"])
    colours = [{c.get_label(): c.lines[0].get_color() for c in ax.containers} for ax in fig.axes[:2]]
    assert set(colours[0]) == {"nce", "logme", "target_entropy", "majority_error"}
    assert all(colours[0][k] == v for k, v in colours[1].items()) and "target_entropy" not in colours[1]
