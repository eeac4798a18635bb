"""The best-source sample: rank-1 rows only, spread from the most to the least often present target."""
import pandas as pd

from transferability.analysis.best_sources import best_sources_figure, markdown, sample_best


def rows(n_targets):
    out = []
    for t in range(n_targets):
        for rank in (1, 2):
            out.append(dict(target=f"t{t}", source=f"s{t}{rank}", ce=0.1 * rank, rank=rank, n=100 + t,
                            target_entropy=0.5, target_name=f"T{t}", source_name=f"S{t}{rank}",
                            target_present=1000 - t))
    return pd.DataFrame(out)


def test_sample_spans_frequent_to_rare_targets_with_their_best_source():
    best = sample_best(rows(40), n=5)
    assert best.target.tolist() == ["t0", "t10", "t20", "t29", "t39"] and (best["rank"] == 1).all()
    assert sample_best(rows(3), n=5).target.tolist() == ["t0", "t1", "t2"]
    table = markdown(best)
    assert "| T0 | S01 | 0.1000 | 0.5000 | 100 | 1,000 |" in table
    fig = best_sources_figure(best, "title")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "T0 <- S01" in labels and len(fig.axes[0].patches) == 10
