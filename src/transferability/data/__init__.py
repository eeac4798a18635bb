"""Data: label tables (`labels`), image sources and their decoded-image cache (`images`), the shared parsers
of official release files (`parsing`), the name -> loader table (`registry`) and one loader per dataset.
A new dataset is one module here plus a line in `registry.DATASETS`.

May import the edges (config, errors, io) only."""
from .registry import DATASETS, Dataset, load_dataset, task_names

__all__ = ["DATASETS", "Dataset", "load_dataset", "task_names"]
