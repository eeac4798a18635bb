"""dataset=table: a label table alone, `dataset.labels=<file.csv|.jsonl|.parquet>` with an id column
(`dataset.id_column`) and one column per task, read by the same rules as dataset=folder's metadata
(label_files.py). Without images: stage=estimate at any size, and with `backbone=features backbone.path=<.npz>`
(ids and embeddings, models/backbones.load_features) the whole transfer matrix.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import DatasetConfig
from ..errors import UserError
from .label_files import TaskParams, label_table, read_label_file
from .parsing import parse_params
from .registry import Dataset


@dataclass(frozen=True)
class TableParams(TaskParams):
    labels: str | None          # the label file
    id_column: str | None       # the column of image ids (the embeddings file's `ids`)

    def __post_init__(self) -> None:
        self.check("table")


def load(cfg: DatasetConfig) -> Dataset:
    params = parse_params(TableParams, cfg.params, "table")
    if not params.labels:
        raise UserError("table: dataset.labels is not set; expected a label file (.csv, .jsonl or .parquet) with "
                        "an id column and one column per task")
    if not params.id_column:
        raise UserError(f"table: dataset.id_column is not set; name the column of image ids in {params.labels}")
    key = params.id_column
    lf = read_label_file(Path(params.labels), key, hint=" (set dataset.id_column=<name>)")
    table = label_table(lf, params, key)
    return Dataset(name="table", labels=table, locate=lambda row: lf.where(row, key),
                   no_images_reason="a label table has no images: use backbone=features backbone.path=<.npz> "
                                    "(ids and embeddings of these rows)")
