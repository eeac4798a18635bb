"""The full-size rehearsal's pieces: the cut release tree, the projection arithmetic, the report, bad --n."""
import numpy as np
import pytest

from transferability.bench import scale
from transferability.config import group_config


def test_label_files_cut_to_n_keep_every_split_and_load(shared_data, tmp_path):
    from transferability.data.registry import load_dataset

    names = scale._copy_labels(shared_data / "celeba", tmp_path, 3000)
    assert len(names) == 3000 and names[0] == "000001.jpg" and names[-1] == "202599.jpg"
    table = load_dataset(group_config("dataset", "celeba", root=str(tmp_path))).labels
    sizes = table.split.value_counts()
    # evenly spaced rows keep the release's split shares (162,770 / 19,867 / 19,962 of 202,599)
    assert len(table.labels) == 3000 and abs(sizes["train"] / 3000 - 162_770 / 202_599) < 0.01
    assert sizes["test"] > 250 and sizes["val"] > 250
    assert list(table.labels.index[:2]) == [n[:-4] for n in names[:2]]
    assert scale.target_list(tmp_path, "attributes") == [t for t in table.tasks if t != "identity"]


def test_generated_images_are_celeba_sized_and_differ():
    a, b = np.asarray(scale._face(1)), np.asarray(scale._face(2))
    assert a.shape == (218, 178, 3) and a.dtype == np.uint8 and np.abs(a.astype(int) - b).mean() > 10


def test_projection_arithmetic():
    r = dict(n_fit=900, n_val=100, train_img_s=100.0, extract_img_s=1000.0, full_heads_estimators_s=60.0,
             device="cpu")
    fit, val = 900 * scale.FULL / 2000, 100 * scale.FULL / 2000
    want = 41 * (20 * (fit / 100 + val / 1000) + scale.FULL / 1000 + 60) / 3600
    out = scale.project(r, 2000, 20, {"train_rate": 200.0, "extract_rate": 4000.0})
    assert out["projected_matrix_h_cpu"] == pytest.approx(want)
    assert out["projected_matrix_h_gpu"] == pytest.approx(
        41 * (20 * (fit / 200 + val / 4000) + scale.FULL / 4000 + 60) / 3600)
    assert scale.project(dict(r, device="gpu"), 2000, 20, None) == {"projected_matrix_h_cpu": None}


def test_row_config_is_the_validated_stage_config(shared_data, tmp_path):
    run = scale.row_config(shared_data / "celeba", tmp_path, 64, "gpu", 7, None, "all")
    assert (run.stage, run.source, run.target, run.force) == ("transfer", "Male", "all", True)
    assert (run.trainer.accelerator, run.trainer.max_epochs, run.trainer.limit_train_batches) == ("gpu", 1, 7)
    assert run.backbone.name == "resnet18" and run.head.name == "linear_svm" and run.dataset.image_size == 64


def test_report_names_goals_and_verdicts():
    r = dict(n_images=3000, image_size=64, cpus=2, cpus_from="affinity 2", device="cpu", trainer="cpu", threads=2,
             targets="all", decode_img_s_one_worker=100.0, decode_img_s=150.0, workers=2, parallel_efficiency=0.75,
             cache_bytes=2**30, batches=5, train_s=3.0, extract_img_s=50.0, n_train=2700, n_test=300, heads_s=1.0,
             estimators_s=2.0, full_n_train=182_637, full_targets=41, full_heads_estimators_s=80.0, full_threads=2,
             full_device="cpu", full_heads_s=50.0, full_estimators_s=30.0, full_cpu_s=150.0, row_s=10.0,
             peak_rss_bytes=5 * 2**30, peak_anon_rss_bytes=2**30, projected_matrix_h_cpu=12.0,
             projected_matrix_h_gpu=None, epochs_per_source=20)
    text = scale.report(r)
    assert ("0.75 x (NOT met)" in text and "< 4 GB at 64 px (NOT met)" in text and "182,637 x 512 (s)" in text
            and "150 CPU-s" in text)
    assert "this CPU (h)" in text and "GPU" not in text
    assert "< 90 s on 2 cores: met (" in text
    assert ("< 90 s on 2 cores: NOT met here; 150 CPU-s, so only 2 idle cores kept busy"
            in scale.report(dict(r, full_heads_estimators_s=100.0)))


def test_time_goal_verdicts():
    from transferability.bench import time_goal

    assert time_goal(59.0, 110.0, 60) == "met"
    assert time_goal(150.0, 50.0, 60).startswith("met on CPU time: 50 CPU-s < 60, so one idle core")
    assert time_goal(150.0, 100.0, 60).startswith("NOT met here; 100 CPU-s, so only 2 idle cores")
    assert time_goal(150.0, 130.0, 60).startswith("NOT met (130 CPU-s")


def test_too_few_images_is_refused(capsys):
    assert scale.main(["--n", "100"]) == 2
    assert "--n 100: expected 3000.." in capsys.readouterr().out


@pytest.mark.slow
def test_a_small_rehearsal_runs_end_to_end(shared_data, tmp_path, capsys):
    """`make bench-scale ARGS="--n 3000"` as a user would run it: tree, cache, the real row in a child process,
    the json with every figure the report and README quote, and the private peak of each step of the row."""
    out, js = tmp_path / "scale", tmp_path / "scale.json"
    assert scale.main(["--n", "3000", "--targets", "attributes", "--skip-full-heads", "--workers", "2",
                       "--threads", "1", "--labels", str(shared_data / "celeba"), "--out", str(out),
                       "--json", str(js), "--gpu-json", str(tmp_path / "none.json")]) == 0
    import json

    r = json.loads(js.read_text())
    for key in ("n_images", "decode_img_s", "decode_img_s_one_worker", "workers", "cache_bytes", "peak_rss_bytes",
                "extract_img_s", "heads_s", "estimators_s", "row_s", "projected_matrix_h_cpu"):
        assert r[key] > 0, key
    assert r["n_images"] == 3000 and r["n_targets"] == 40 and r["threads"] == 1
    phases = r["peak_anon_by_phase"]
    assert set(phases) == {"train_extract", "heads_estimators", "other"}
    assert max(phases.values()) == r["peak_anon_rss_bytes"]
    assert "private peak by phase" in capsys.readouterr().out
