"""CalibrationStatusClassification: is the LiDAR-camera extrinsic still right?

One graph (`model`: `input` [B, 5, H, W] -> `output` [B, 2] logits), so the default
single-graph `forward` applies. The evaluated dataset holds every info-file sample
twice — calibrated (label 1) and miscalibrated (label 0) — with the perturbation
seeded per sample, so every backend sees byte-identical inputs.

No torch import at module level: the harness loads this file at pytest start.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from awml_harness.config.errors import ConfigError
from awml_harness.config.schema import check_elements
from awml_harness.project import ModelSize, Prepared, ProjectAdapter, declared_input_shape

from .autoware_package import AutowarePackage
from .data import (
    CALIBRATED,
    CLASS_NAMES,
    MISCALIBRATED,
    CalibrationDataset,
    CalibrationRecord,
    CalibrationSample,
    Miscalibration,
    ProjectionConfig,
    load_records,
)
from .metrics import ClassificationEvaluator

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import DeployConfig
    from awml_harness.graph import Graph

GRAPH = "model"


@dataclass(frozen=True)
class CalibrationSettings:
    """`model_cfg` of a calibration deploy config."""

    in_channels: int = 5
    num_classes: int = 2
    base_channels: int = 64  # ResNet-18 width; 64 is AWML's model
    depth_scale: float = 80.0  # metres mapped to 255 in the depth channel
    point_radius: int = 0  # each LiDAR point paints a (2r+1)^2 patch (AWML's dilation_size)
    #: AWML's `max_depth`: points at depth_scale or farther are left out (False: they saturate at 255)
    drop_beyond_depth: bool = False
    #: AWML's `miscalibration_probability` at test time. The harness evaluates every sample in
    #: both states (0.5: the balanced set, deterministic), only calibrated (0) or only
    #: miscalibrated (1); other values describe a random draw it does not reproduce
    miscalibration_probability: float = 0.5
    input_size: tuple[int, int] | None = None  # (H, W) resize of image + intrinsics; None: as stored
    miscalibration_seed: int = 0  # rng = default_rng(seed + sample_idx)
    min_angle_deg: float = 1.0
    max_angle_deg: float = 10.0
    min_translation_m: float = 0.05
    max_translation_m: float = 0.2
    init_seed: int = 0  # random init when checkpoint_path is None
    #: serve the evaluated samples this many times (ids of copies end in -r<k>, inputs
    #: identical); 1 = off. For memory/throughput benchmarks on the small shipped data.
    dataset_repeat: int = 1
    strict_load: bool = True
    #: the OpenMMLab model config these settings were derived from (set by the loader)
    openmmlab_config: str | None = None
    #: "registry": build the PyTorch reference through mmpretrain's registry ([mm] extra)
    reference: Literal["native", "registry"] = "native"

    def validate(self, key: str) -> None:
        if self.in_channels != 5:
            raise ConfigError(f"{key}.in_channels", self.in_channels, "5 (B, G, R, depth, intensity)")
        if self.num_classes != 2:
            raise ConfigError(f"{key}.num_classes", self.num_classes, "2 (miscalibrated, calibrated)")
        if self.dataset_repeat < 1:
            raise ConfigError(f"{key}.dataset_repeat", self.dataset_repeat, "an integer >= 1 (1: each sample once)")
        if self.base_channels <= 0:
            raise ConfigError(f"{key}.base_channels", self.base_channels, "a positive integer")
        if self.depth_scale <= 0:
            raise ConfigError(f"{key}.depth_scale", self.depth_scale, "a positive distance in metres")
        if self.miscalibration_probability not in (0.0, 0.5, 1.0):
            raise ConfigError(f"{key}.miscalibration_probability", self.miscalibration_probability,
                              "0 (calibrated samples only), 0.5 (every sample calibrated and miscalibrated) or "
                              "1 (miscalibrated only): the harness evaluates a deterministic set, not a random draw")
        if self.point_radius < 0:
            raise ConfigError(f"{key}.point_radius", self.point_radius, "an integer >= 0")
        if self.input_size is not None and min(self.input_size) < 32:
            raise ConfigError(f"{key}.input_size", list(self.input_size), "(H, W) with both >= 32, or None")
        if not 0 <= self.min_angle_deg <= self.max_angle_deg:
            raise ConfigError(f"{key}.min_angle_deg", [self.min_angle_deg, self.max_angle_deg], "0 <= min_angle_deg <= max_angle_deg")
        if not 0 <= self.min_translation_m <= self.max_translation_m:
            raise ConfigError(f"{key}.min_translation_m", [self.min_translation_m, self.max_translation_m],
                              "0 <= min_translation_m <= max_translation_m")

    @property
    def miscalibration(self) -> Miscalibration:
        return Miscalibration(self.min_angle_deg, self.max_angle_deg, self.min_translation_m, self.max_translation_m)

    @property
    def projection(self) -> ProjectionConfig:
        return ProjectionConfig(self.depth_scale, self.point_radius, self.input_size, self.drop_beyond_depth)

    @property
    def labels(self) -> tuple[int, ...]:
        return {0.0: (CALIBRATED,), 1.0: (MISCALIBRATED,)}.get(self.miscalibration_probability,
                                                               (CALIBRATED, MISCALIBRATED))


def _records(cfg: DeployConfig) -> list[CalibrationRecord]:
    info = cfg.runtime_io.info_file
    if info is None:
        raise ConfigError("runtime_io.info_file", None, "the calibration info file (.pkl or .json)")
    try:
        return load_records(info, cfg.runtime_io.data_root, allow_unsafe=cfg.unsafe_load)
    except Exception as exc:  # unreadable, unsafe or malformed: one config error, not a traceback
        raise ConfigError("runtime_io.info_file", str(info), f"a readable calibration info file ({type(exc).__name__}: {exc})") from None


class Project(AutowarePackage, ProjectAdapter):
    name: ClassVar[str] = "CalibrationStatusClassification"
    task_type: ClassVar[str] = "classification"
    codebase: ClassVar[str | None] = "mmpretrain"  # an AWML deploy config's codebase_config.type
    settings_cls: ClassVar[type | None] = CalibrationSettings
    default_configs: ClassVar[tuple[str, ...]] = ("configs/deploy_config.py",)  # the installed suites run it

    def __init__(self, cfg: DeployConfig) -> None:
        super().__init__(cfg)
        self.settings: CalibrationSettings = cfg.model_settings or CalibrationSettings()
        self._dataset: CalibrationDataset | None = None

    # -- config -----------------------------------------------------------------------
    @classmethod
    def model_size(cls, cfg: DeployConfig) -> ModelSize:
        from .size import activations, resnet18_parameters

        s: CalibrationSettings = cfg.model_settings or CalibrationSettings()
        shape = declared_input_shape(cfg, GRAPH, cfg.model_io.input_name or "input")
        hw = s.input_size or (tuple(shape[-2:]) if shape is not None else None)
        acts = activations(s.in_channels, s.base_channels, hw)  # type: ignore[arg-type]
        if s.input_size is None:  # a declared shape is bounded where it is declared (limits.max_elements)
            acts.pop("input_size", None)
        return ModelSize(parameters={"base_channels": resnet18_parameters(s.in_channels, s.base_channels, s.num_classes)},
                         activations=acts)

    @classmethod
    def check_config(cls, cfg: DeployConfig) -> None:
        settings: CalibrationSettings = cfg.model_settings or CalibrationSettings()
        if settings.input_size is not None:  # before any example image is allocated
            check_elements((1, settings.in_channels, *settings.input_size), "model_cfg.input_size",
                           cfg.limits.max_elements)
        records = _records(cfg)
        if not records:
            raise ConfigError("runtime_io.info_file", str(cfg.runtime_io.info_file), "an info file with at least one sample")
        missing = [str(p) for r in records for p in (r.img_path, r.lidar_path) if not p.is_file()]
        if missing:
            root = cfg.runtime_io.data_root or cfg.runtime_io.info_file.parent  # type: ignore[union-attr]
            raise ConfigError("runtime_io.data_root", str(root),
                              f"a folder holding every file the info file names ({len(missing)} missing, e.g. {missing[0]})")
        if cfg.runtime_io.sample_idx >= 2 * len(records):
            raise ConfigError("runtime_io.sample_idx", cfg.runtime_io.sample_idx,
                              f"an index below {2 * len(records)} (each of the {len(records)} samples appears twice)")
        io = cfg.model_io
        if io.input_shape is not None and io.input_shape[0] != settings.in_channels:
            raise ConfigError("model_io.input_shape", list(io.input_shape), f"({settings.in_channels}, H, W)")
        if io.output_shape is not None and tuple(io.output_shape) != (settings.num_classes,):
            raise ConfigError("model_io.output_shape", list(io.output_shape), f"({settings.num_classes},)")

    # -- model ------------------------------------------------------------------------
    def build_model(self) -> Any:
        import torch

        from awml_harness.openmmlab import load_checkpoint

        from .model import CalibrationClassifier
        from .openmmlab import KEY_MAP, build_reference

        s = self.settings
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.init_seed)
            if s.reference == "registry":
                model = build_reference(s)
            else:
                model = CalibrationClassifier(s.in_channels, s.num_classes, s.base_channels)
        if self.cfg.checkpoint_path is None:
            warnings.warn(
                f"{self.name}: checkpoint_path is None, using a random init (seed {s.init_seed}); "
                "fine for export/verification, meaningless for accuracy",
                stacklevel=2,
            )
        else:
            load_checkpoint(model, self.cfg.checkpoint_path, KEY_MAP, strict=s.strict_load,
                            allow_pickle=self.cfg.unsafe_load)
        return model.eval()

    def graph_names(self) -> tuple[str, ...]:
        return (GRAPH,)

    def _io_names(self) -> tuple[str, str]:
        return self.cfg.model_io.input_name or "input", self.cfg.model_io.output_name or "output"

    def graphs(self, model: Any) -> Sequence[Graph]:
        in_name, out_name = self._io_names()
        example = self.preprocess(self.dataset()[self.cfg.runtime_io.sample_idx]).inputs[in_name]
        return [self.single_input_graph(GRAPH, model, example, in_name, out_name)]

    # -- data -------------------------------------------------------------------------
    def dataset(self) -> CalibrationDataset:
        if self._dataset is None:
            self._dataset = CalibrationDataset(
                _records(self.cfg),
                seed=self.settings.miscalibration_seed,
                miscalibration=self.settings.miscalibration,
                projection=self.settings.projection,
                repeat=self.settings.dataset_repeat,
                labels=self.settings.labels,
            )
        return self._dataset

    def target(self, sample: CalibrationSample) -> int:
        return int(sample.label)

    # -- pipeline ---------------------------------------------------------------------
    def preprocess(self, sample: CalibrationSample) -> Prepared:
        in_name, _ = self._io_names()
        x = self.dataset().load(sample)[None]
        return Prepared(sample.sample_id, {in_name: x}, {"label": sample.label})

    def postprocess(self, outputs: Mapping[str, Any], prepared: Prepared) -> dict[str, Any]:
        _, out_name = self._io_names()
        logits = np.asarray(outputs[out_name], dtype=np.float64).reshape(-1)
        shifted = np.exp(logits - logits.max())
        probs = (shifted / shifted.sum()).astype(np.float32)
        return {"label": int(np.argmax(logits)), "probs": probs}

    def evaluator(self) -> ClassificationEvaluator:
        return ClassificationEvaluator(CLASS_NAMES)

