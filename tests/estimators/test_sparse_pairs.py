"""All-pairs CE from sparse present / verified-absent indicators, against the dense engine `ce_matrix`, Eq. 7
written out per pair, and hand-computed values."""
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from transferability import ce_matrix, hardness
from transferability.estimators.sparse_pairs import ce_all_pairs, ce_blocks, entropies, top_k


def indicators(dense: np.ndarray):
    """Present and verified-absent CSR matrices of a 1 / 0 / NaN table."""
    return sp.csr_matrix(dense == 1), sp.csr_matrix(dense == 0)


def random_table(rng, n=400, t=9, known=0.6):
    x = (rng.random((n, t)) < rng.random(t)).astype(float)
    x[:, 1] = x[:, 0]                           # a copy: H = 0 between them where both are known
    x[:, 2] = np.where(x[:, 0] == 1, 1.0, x[:, 2])   # a parent of task 0
    x[rng.random((n, t)) > known] = np.nan
    x[:, 3] = np.nan                            # a task never labelled
    x[:5, 4] = 1.0
    x[5:, 4] = np.nan                           # labelled on five images only, all present
    return x


def brute(y, z):
    """Eq. 7 over the rows where both labels exist: -sum P(y,z) log(P(y,z) / P(z))."""
    ok = ~np.isnan(y) & ~np.isnan(z)
    y, z = y[ok], z[ok]
    n = len(y)
    if n == 0:
        return math.nan
    h = 0.0
    for a in (0, 1):
        for b in (0, 1):
            c = np.sum((y == a) & (z == b))
            if c:
                h -= c / n * math.log(c / np.sum(z == b))
    return h


@pytest.mark.parametrize("bias", [False, True])
def test_missing_labels_agree_with_the_dense_engine(bias):
    x = random_table(np.random.default_rng(0))
    p, a = indicators(x)
    got = ce_all_pairs(p, a, p, a, bias_correction=bias)
    want = ce_matrix(pd.DataFrame(x), bias_correction=bias).to_numpy()
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.nanmax(np.abs(got - want)) < 1e-9
    assert np.isnan(got[3]).all() and np.isnan(got[:, 3]).all()   # no image labelled for the never-labelled task


def test_against_eq7_per_pair_and_blocks_do_not_matter():
    x = random_table(np.random.default_rng(1), n=300, t=7)
    p, a = indicators(x)
    want = np.array([[brute(x[:, t], x[:, s]) for s in range(7)] for t in range(7)])
    for block in (1, 3, None):
        got = ce_all_pairs(p, a, p, a, block=block)
        assert np.allclose(got, want, atol=1e-12, equal_nan=True)
    assert got[1, 0] == 0.0 and got[0, 0] == 0.0 and got[2, 0] > 0.0 or np.isnan(got[2, 0])


def test_targets_and_sources_differ():
    x = random_table(np.random.default_rng(2), n=250, t=8)
    p, a = indicators(x)
    tg, sc = [0, 5, 6], [1, 2, 7, 4]
    got = ce_all_pairs(p[:, tg], a[:, tg], p[:, sc], a[:, sc])
    want = ce_matrix(pd.DataFrame(x[:, tg]), pd.DataFrame(x[:, sc])).to_numpy()
    assert np.nanmax(np.abs(got - want)) < 1e-9 and np.array_equal(np.isnan(got), np.isnan(want))


@pytest.mark.parametrize("bias", [False, True])
def test_unverified_as_negative_is_the_filled_table(bias):
    x = random_table(np.random.default_rng(3))
    x[:, 5] = 1.0                               # present everywhere: no image without it
    p = sp.csr_matrix(x == 1)
    got = ce_all_pairs(p, None, p, None, bias_correction=bias, block=4)
    want = ce_matrix(pd.DataFrame(np.nan_to_num(x, nan=0.0)), bias_correction=bias).to_numpy()
    assert np.max(np.abs(got - want)) < 1e-9


def test_hand_computed_counts():
    # Four images. t: 1 1 0 ?, s: 1 0 0 1 -> both known on the first three: n11=1, n10=1, n00=1.
    # H(t|s) = P(s=1) * 0 + P(s=0) * log 2 = (2/3) log 2.
    t = np.array([1, 1, 0, np.nan])
    s = np.array([1, 0, 0, 1])
    x = np.stack([t, s], axis=1)
    p, a = indicators(x)
    h = ce_all_pairs(p, a, p, a)
    assert h[0, 1] == pytest.approx(2 / 3 * math.log(2))
    # H(s|t) on the same three images: t=1 -> s is 1 or 0 (log 2); t=0 -> s=0.
    assert h[1, 0] == pytest.approx(2 / 3 * math.log(2))
    # Unknown as absent: t = 1 1 0 0; H(t|s): s=1 -> t in {1, 0}, s=0 -> t in {1, 0}: log 2.
    hn = ce_all_pairs(p, None, p, None)
    assert hn[0, 1] == pytest.approx(math.log(2))


def test_entropies_are_the_hardness_of_each_task():
    x = random_table(np.random.default_rng(4))
    p, a = indicators(x)
    h, known, present = entropies(p, a)
    for j in range(x.shape[1]):
        col = x[:, j][~np.isnan(x[:, j])]
        assert known[j] == len(col) and present[j] == col.sum()
        if len(col):
            assert h[j] == pytest.approx(hardness(col), abs=1e-12)
        else:
            assert np.isnan(h[j])


def test_block_counts_are_the_images_labelled_for_both():
    x = random_table(np.random.default_rng(5), n=100, t=6)
    p, a = indicators(x)
    (rows, _, n), = list(ce_blocks(p, a, p, a))
    both = (~np.isnan(x)).astype(int)
    assert rows == slice(0, 6) and np.array_equal(n, both.T @ both)


def test_top_k_orders_excludes_and_filters():
    h = np.array([[0.0, 0.3, 0.1, 0.2, np.nan],
                  [0.5, 0.0, 0.5, 0.05, 0.4]])
    n = np.array([[9, 9, 9, 2, 9],
                  [9, 9, 9, 9, 9]])
    cols, vals = top_k(h, n, k=3, min_rows=5, exclude=np.array([0, 1]))
    # Row 0: itself excluded, column 3 has too few images, column 4 is NaN: two qualify.
    assert cols[0].tolist() == [2, 1, -1] and np.allclose(vals[0, :2], [0.1, 0.3]) and np.isnan(vals[0, 2])
    # Row 1: the tie at 0.5 keeps the lower column.
    assert cols[1].tolist() == [3, 4, 0] and np.allclose(vals[1], [0.05, 0.4, 0.5])
    cols, _ = top_k(h, n, k=7, exclude=np.array([0, 1]))
    assert cols.shape == (2, 7) and cols[0].tolist() == [2, 3, 1, -1, -1, -1, -1]
