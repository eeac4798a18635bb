"""Every stage on your own data: dataset=folder (images + metadata.csv) and dataset=table (labels, with precomputed
embeddings for transfer); the exported digits give dataset=digits' numbers; run.py's one-line errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.paths import REPO
from transferability.errors import UserError
from transferability.stages.estimate import run_estimate
from transferability.stages.transfer import run_transfer


def image_folder(root, n=48, constant=True):
    """RGB images whose colour and brightness are the labels: `red` (binary), `shade` (3 classes) and, with
    `constant`, a task `same` with one class."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    lines = ["file_name,red,shade" + (",same" if constant else "") + ",split"]
    for i in range(n):
        red, shade = i % 2, i % 3
        img = rng.integers(0, 40, (10, 12, 3)) + np.array([150 * red, 0, 60 * shade])
        Image.fromarray(img.astype(np.uint8)).save(root / f"img_{i}.png")
        split = "test" if i % 4 == 3 else "train"
        lines.append(f"img_{i}.png,{'yes' if red else 'no'},{shade}" + (",x" if constant else "") + f",{split}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def test_estimate_skips_a_single_class_target_with_a_line(run_config, tmp_path, caplog):
    root = image_folder(tmp_path / "data")
    out = run_estimate(run_config(["stage=estimate", "dataset=folder", f"dataset.root={root}"]))
    assert "skipping 1 single-class target(s): same" in caplog.text
    ce = pd.read_csv(out / "ce.csv")
    assert set(ce.target) == {"red", "shade"} and set(ce.source) == {"red", "shade", "same"}
    hard = pd.read_csv(out / "hardness.csv").set_index("task").hardness
    # train rows: i % 4 in (0, 1, 2), red where i is odd: a third of them
    assert hard["same"] == 0 and hard["red"] == pytest.approx(-(np.log(1 / 3) + 2 * np.log(2 / 3)) / 3)
    assert out.parts[-3].startswith("folder-data-")   # the folder's name is in the output path


def test_transfer_row_on_a_folder_skips_the_single_class_target(run_config, tmp_path, caplog):
    root = image_folder(tmp_path / "data")
    run = run_config(["dataset=folder", f"dataset.root={root}", "dataset.image_size=8", "source=shade",
                      "trainer=debug", "trainer.limit_train_batches=null"])
    out = run_transfer(run)
    assert "skipping 1 single-class target(s): same" in caplog.text
    rows = pd.read_csv(out / "results.csv")
    assert rows.target.tolist() == ["red", "shade"] and rows.dedicated.tolist() == [False, True]
    assert json.loads((out / "source.json").read_text())["skipped_targets"] == ["same"]


def table_with_embeddings(tmp_path, drop: int = 0):
    """labels.csv (ids, two tasks) and an .npz of embeddings that carry the labels, minus the last `drop` ids."""
    rng = np.random.default_rng(1)
    n = 60
    ids = np.array([f"u{i:03d}" for i in range(n)])
    a, b = rng.integers(0, 2, n), rng.integers(0, 3, n)
    pd.DataFrame({"id": ids, "a": a, "b": b}).to_csv(tmp_path / "labels.csv", index=False)
    emb = np.c_[a, b, rng.standard_normal((n, 3))].astype(np.float32)
    np.savez(tmp_path / "emb.npz", ids=ids[: n - drop], embeddings=emb[: n - drop])
    return tmp_path / "labels.csv", tmp_path / "emb.npz"


def test_table_estimate_and_transfer_with_precomputed_embeddings(run_config, tmp_path):
    labels, emb = table_with_embeddings(tmp_path)
    table = ["dataset=table", f"dataset.labels={labels}", "dataset.id_column=id"]
    ce = pd.read_csv(run_estimate(run_config(["stage=estimate", *table])) / "ce.csv")
    assert set(ce.source) == set(ce.target) == {"a", "b"}
    out = run_transfer(run_config([*table, "backbone=features", f"backbone.path={emb}", "source=b",
                                   "trainer=debug", "trainer.limit_train_batches=null"]))
    rows = pd.read_csv(out / "results.csv").set_index("target")
    assert rows.loc["a", "test_accuracy"] > 0.9   # the first embedding dimension is `a` itself


def test_embeddings_that_miss_a_labelled_row_name_it(run_config, tmp_path):
    labels, emb = table_with_embeddings(tmp_path, drop=2)
    run = run_config(["dataset=table", f"dataset.labels={labels}", "dataset.id_column=id", "backbone=features",
                      f"backbone.path={emb}", "source=a", "trainer=debug"])
    with pytest.raises(UserError, match=rf"emb.npz: no embedding for image id 'u058' \({labels}, line 60, column id; "
                                        r"2 of 60 ids missing\)"):
        run_transfer(run)


def test_table_transfer_without_embeddings_says_what_to_give(run_config, tmp_path):
    labels, _ = table_with_embeddings(tmp_path)
    run = run_config(["dataset=table", f"dataset.labels={labels}", "dataset.id_column=id", "source=a"])
    with pytest.raises(UserError, match=r"a label table has no images: use backbone=features backbone.path="):
        run_transfer(run)


# -- end to end --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_exported_digits_give_the_digits_numbers(run_config, tmp_path):
    """dataset=folder on the exported digits: the same task list, CE matrix and transfer row as dataset=digits."""
    from transferability.data.export import dataset_config, export
    from transferability.data.registry import task_names

    export(dataset_config("digits", []), tmp_path / "digits")
    as_folder = ["dataset=folder", f"dataset.root={tmp_path / 'digits'}", "dataset.image_size=8"]
    digits, folder = run_config(["dataset=digits"]), run_config(as_folder)
    assert task_names(folder.dataset) == task_names(digits.dataset)
    ce = [pd.read_csv(run_estimate(run_config(["stage=estimate", *d])) / "ce.csv") for d in (["dataset=digits"],
                                                                                             as_folder)]
    pd.testing.assert_frame_equal(ce[0], ce[1], check_exact=True)
    row = ["source=even", "trainer=debug", "trainer.limit_train_batches=null", "trainer.threads=1"]
    a, b = (run_transfer(run_config([*d, *row])) / "results.csv" for d in (["dataset=digits"], as_folder))
    assert a != b and a.read_bytes() == b.read_bytes()


def run_py(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / "run.py"), *args, f"paths.outputs={tmp_path / 'out'}"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("data", ["folder", "table"])
def test_matrix_folder_sweeps_every_column_and_analyses(tmp_path, data):
    """python run.py -m experiment=matrix_folder dataset.root=<dir> (or dataset=table with embeddings), two jobs at a
    time: a row per column, then the analysis; stage=analyze alone reads the same rows."""
    if data == "folder":
        root = image_folder(tmp_path / "data", constant=False)
        dataset = ["dataset=folder", f"dataset.root={root}", "dataset.image_size=8"]
        rows_in, sources = "folder-data-*/small_cnn/linear_svm/trainer=debug*", ["source=red", "source=shade"]
    else:
        labels, emb = table_with_embeddings(tmp_path)
        dataset = ["dataset=table", f"dataset.labels={labels}", "dataset.id_column=id", "backbone=features",
                   f"backbone.path={emb}"]
        rows_in, sources = "table-labels-*/features-emb-*/linear_svm/trainer=debug*", ["source=a", "source=b"]
    args = ["-m", "+experiment=matrix_folder", *dataset, "seed=0", "trainer=debug", "trainer.limit_train_batches=null",
            "launcher=joblib"]
    done = run_py(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = sorted((tmp_path / "out").glob(f"{rows_in}/source=*/seed=0/results.csv"))
    assert [p.parts[-3] for p in rows] == sources
    summary = next((tmp_path / "out").glob(f"{rows_in}/analysis/summary.md"))
    assert summary.stat().st_size > 0
    again = run_py(["stage=analyze", *dataset, "trainer=debug", "trainer.limit_train_batches=null"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["ragged", "split", "missing_image", "embeddings"])
def test_bad_input_through_run_py_is_one_line_exit_2_and_nothing_written(tmp_path, case):
    root = image_folder(tmp_path / "data")
    args = ["dataset=folder", f"dataset.root={root}", "dataset.image_size=8", "source=red", "trainer=debug"]
    meta = root / "metadata.csv"
    if case == "ragged":
        meta.write_text(meta.read_text().replace("img_5.png,yes,2,x,train", "img_5.png,yes,2,x,train,extra"))
        args, expect = ["stage=estimate", *args], rf"{meta}, line 7: 6 fields; the header has 5"
    elif case == "split":
        meta.write_text(meta.read_text().replace("img_5.png,yes,2,x,train", "img_5.png,yes,2,x,dev"))
        args, expect = ["stage=estimate", *args], rf"{meta}, line 7, column split: split 'dev'"
    elif case == "missing_image":
        (root / "img_9.png").unlink()
        expect = rf"{meta}, line 11, column file_name: image file not found: \S*img_9.png"
    else:
        labels, emb = table_with_embeddings(tmp_path, drop=1)
        args = ["dataset=table", f"dataset.labels={labels}", "dataset.id_column=id", "backbone=features",
                f"backbone.path={emb}", "source=a", "trainer=debug"]
        expect = rf"emb.npz: no embedding for image id 'u059' \({labels}, line 61, column id; 1 of 60 ids missing\)"
    done = run_py(args, tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    import re

    assert re.search(expect, lines[0]), lines[0]
    # nothing written but the empty lock files of the cache entries a job held (locks outlive their holders)
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and p.suffix != ".lock"] \
        if (tmp_path / "out").exists() else []
    assert written == [], written


def test_names_from_data_stay_one_path_component_and_folders_keep_apart(run_config, tmp_path):
    from transferability.io import component

    assert [component(n) for n in ("wing/colour", "..", "50%", "a\\b", "ok@q25")] == [
        "wing%2Fcolour", "%2E.", "50%25", "a%5Cb", "ok@q25"]
    (tmp_path / "x" / "data").mkdir(parents=True)
    (tmp_path / "y" / "data").mkdir(parents=True)
    a = run_config(["dataset=folder", f"dataset.root={tmp_path / 'x' / 'data'}", "source=wing/colour"]).run_dir
    b = run_config(["dataset=folder", f"dataset.root={tmp_path / 'y' / 'data'}", "source=wing/colour"]).run_dir
    assert a.endswith("/small_cnn/linear_svm/source=wing%2Fcolour/seed=0") and "/folder-data-" in a
    assert a.split("/small_cnn")[0] != b.split("/small_cnn")[0]
