"""A row's numbers, one line per target: the actual transfer (test error of the fitted head, Eq. 4), the head's
train NLL (Eq. 5), the label-only estimates (CE, Eq. 7, plug-in and Miller-Madow), the Theorem-1 terms
(l_Z, the bound l_Z - CE of Eq. 10, and the log-likelihood of its head k-bar, Eq. 9) and the model-based
estimators on the frozen source's outputs; and the row's multi-label target (every binary target but the source at
once), whose scores go to source.json (`row_scores`)."""
from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pandas as pd

from ..config import RunConfig
from ..estimators.label_only import CECounter
from .source_model import SourceOutputs, log_likelihood
from .targets import TargetPlan


def score_targets(run: RunConfig, plan: TargetPlan, source: SourceOutputs, fit) -> pd.DataFrame:
    """results.csv of the row: `fit` is the heads' HeadFit (predictions on train and test, NLLs). Its
    `attrs["row_scores"]` are the row's scalars for source.json (`row_scores`)."""
    from ..estimators.model_based import model_based_scores
    from ..estimators.registry import COMPUTED
    from ..models.heads import fit_heads

    targets, y_tr, y_te, ys_tr = plan.targets, plan.y_train, plan.y_test, plan.y_source_train
    lab = pd.DataFrame(np.where(y_tr >= 0, y_tr, np.nan), columns=targets)
    tasks = targets if plan.source in targets else targets + [plan.source]
    lab[plan.source] = np.where(ys_tr >= 0, ys_tr, np.nan)
    counts = CECounter(tasks).update(lab[tasks])     # count once, read the plug-in and Miller-Madow estimates
    ce = counts.result()[plan.source].reindex(targets)
    ce_mm = counts.result(bias_correction=True)[plan.source].reindex(targets)
    # Eq. 10-12 sum over the same rows on both sides: l_Z per target over rows labelled in both tasks
    # (equal to the source's l_Z wherever no label is missing).
    p_tr = source.p_train
    l_z = np.array([log_likelihood(p_tr, np.where(y_tr[:, j] >= 0, ys_tr, -1)) for j in range(len(targets))])
    if run.head.name == "ce_head":
        kbar_nll = fit.train_nll
    else:  # the Theorem-1 head k-bar (Eq. 9) is only counting: fit it for the bound check too
        kbar_nll = fit_heads(replace(run.head, name="ce_head"), source.z_train, y_tr, source.z_train[:1],
                             plan.n_classes, source_probs_train=p_tr, source_probs_test=p_tr[:1],
                             source_train=ys_tr).train_nll
    model = model_based_scores(source.z_train, p_tr, y_tr, source_labels=ys_tr, **asdict(run.estimators),
                               seed=run.seed)
    test_ok, train_ok = y_te >= 0, y_tr >= 0
    test_err = np.array([(fit.test_pred[test_ok[:, j], j] != y_te[test_ok[:, j], j]).mean()
                         for j in range(len(targets))])
    train_err = np.array([(fit.train_pred[train_ok[:, j], j] != y_tr[train_ok[:, j], j]).mean()
                          for j in range(len(targets))])
    rows = pd.DataFrame({
        "source": plan.source, "target": targets, "dedicated": [t == plan.source for t in targets],
        "n_classes": plan.n_classes, "n_train": train_ok.sum(0), "n_test": test_ok.sum(0),
        "ce": ce.to_numpy(), "ce_mm": ce_mm.to_numpy(), "nce": -ce.to_numpy(),
        "test_error": test_err, "test_accuracy": 1 - test_err, "train_error": train_err,
        "train_nll": fit.train_nll, "test_nll": fit.test_nll, "head_C": fit.C,
        "l_z": l_z, "theorem1_bound": l_z - ce.to_numpy(), "ce_head_train_ll": -np.asarray(kbar_nll),
    })
    for col in COMPUTED:
        rows[col] = model[col].to_numpy() if col in model else np.nan
    rows.attrs["row_scores"] = row_scores(plan, source)
    return rows


def row_scores(plan: TargetPlan, source: SourceOutputs) -> dict:
    """The multi-label target of the row: its binary targets other than the source, as one task. Its scores
    (registry.MULTILABEL; None where undefined, as below two attributes) and its number of attributes,
    `multilabel_n_targets`."""
    from ..estimators.model_based import multilabel_scores
    from ..estimators.registry import MULTILABEL

    binary = [j for j, t in enumerate(plan.targets) if plan.n_classes[j] == 2 and t != plan.source]
    scores = (multilabel_scores(source.z_train, plan.y_train[:, binary]) if len(binary) >= 2
              else {name: float("nan") for name in MULTILABEL})
    return {"multilabel_n_targets": len(binary), **{k: v if np.isfinite(v) else None for k, v in scores.items()}}
