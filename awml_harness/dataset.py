"""The one check every project's data passes through: a dataset with no samples.

Verification, evaluation and latency all index the dataset; with zero samples each of
them would skip or compute metrics over nothing, and the run would pass having tested
nothing. The core refuses it instead, naming the file the samples should have come from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from awml_harness.io import DataError

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import DeployConfig


class DatasetError(DataError):
    """The configured data cannot feed the tests (e.g. it holds no samples)."""


def empty_dataset_message(cfg: DeployConfig) -> str:
    info = cfg.runtime_io.info_file
    if info is None:
        return (f"{cfg.id}: the dataset has no samples and runtime_io.info_file is not set; set it to an "
                "annotation file (info .pkl, COCO JSON, ...) with at least one sample")
    return (f"{cfg.id}: the dataset read from runtime_io.info_file={info} has no samples; give an "
            "annotation file with at least one sample (every verification, evaluation and latency test "
            "needs one)")


def check_not_empty(dataset: Any, cfg: DeployConfig) -> Any:
    """Return `dataset`, or raise DatasetError naming the file when it has no samples."""
    if len(dataset) == 0:
        raise DatasetError(empty_dataset_message(cfg))
    return dataset
