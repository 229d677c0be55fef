"""Reference data: the in-memory schema, HDF5/extxyz files, and the PySCF generators."""

from siqml_cli.data.io import read_dataset, write_dataset, write_predictions
from siqml_cli.data.schema import Dataset

__all__ = ["Dataset", "read_dataset", "write_dataset", "write_predictions"]
