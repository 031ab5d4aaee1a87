"""SemanticSegmentation: a compact UNet labelling every pixel of a road scene.

One graph (`model`: `input` [B, 3, H, W] -> `logits` [B, C, H, W]). The pipeline runs
the graph, then takes the argmax over classes in numpy (mmseg's postprocess), so the
raw outputs verification compares are both `logits` and `mask` [B, H, W]: logits with
atol/rtol, the mask with `max_mismatch_share` (a pixel whose two best logits are nearly
tied may take the other class on another backend; a broken export moves many pixels).
The argmax is no graph op on purpose: every backend computes the mask with the same
code, and ONNX Runtime's CPU ArgMax has no fp16 kernel.

Data: mmseg's `img_dir/<split>` + `ann_dir/<split>` layout under `runtime_io.data_root`
(`data.py`); metrics: mIoU, mAcc, pixel accuracy, per-class IoU (`metrics.py`).
No torch import at module level: the harness loads this file at pytest start.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from awml_harness.config.errors import ConfigError
from awml_harness.io import DataError
from awml_harness.project import GraphCaller, ModelSize, Prepared, ProjectAdapter, StageTimer, declared_input_shape

from .data import CLASS_NAMES, IGNORE_INDEX, SegDataset, SegSample, normalize, read_image, read_label
from .metrics import SegmentationEvaluator

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import DeployConfig
    from awml_harness.graph import Graph

GRAPH = "model"
MASK = "mask"  # the pipeline's argmax output beside the graph's logits


@dataclass(frozen=True)
class SegmentationSettings:
    """`model_cfg` of a segmentation deploy config."""

    in_channels: int = 3
    class_names: tuple[str, ...] = CLASS_NAMES
    base_channels: int = 8  # width of the first UNet stage; doubles per stage
    depth: int = 3  # encoder stages; H and W must be multiples of 2^(depth-1)
    split: str = "val"  # img_dir/<split>, ann_dir/<split>
    img_suffix: str = ".png"
    seg_map_suffix: str = ".png"
    ignore_index: int = IGNORE_INDEX
    init_seed: int = 0  # random init when checkpoint_path is None
    strict_load: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def stride(self) -> int:
        return 2 ** (self.depth - 1)

    def validate(self, key: str) -> None:
        if self.in_channels != 3:
            raise ConfigError(f"{key}.in_channels", self.in_channels, "3 (RGB)")
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ConfigError(f"{key}.class_names", list(self.class_names), "at least two distinct class names")
        if len(self.class_names) > 255:
            raise ConfigError(f"{key}.class_names", len(self.class_names), "at most 255 classes (8-bit label maps)")
        if self.base_channels <= 0:
            raise ConfigError(f"{key}.base_channels", self.base_channels, "a positive integer")
        if not 1 <= self.depth <= 6:
            raise ConfigError(f"{key}.depth", self.depth, "an integer 1..6")
        if not 0 <= self.ignore_index <= 255 or self.ignore_index < len(self.class_names):
            raise ConfigError(f"{key}.ignore_index", self.ignore_index,
                              f"a label value {len(self.class_names)}..255 that is no class index")


def _dataset(cfg: DeployConfig, settings: SegmentationSettings) -> SegDataset:
    root = cfg.runtime_io.data_root
    if root is None:
        raise ConfigError("runtime_io.data_root", None, "the dataset folder holding img_dir/ and ann_dir/ (mmseg layout)")
    try:
        return SegDataset(root, settings.split, settings.img_suffix, settings.seg_map_suffix)
    except DataError as exc:
        raise ConfigError("runtime_io.data_root", str(root), f"an mmseg-layout dataset ({exc})") from None


class Project(ProjectAdapter):
    name: ClassVar[str] = "SemanticSegmentation"
    task_type: ClassVar[str] = "segmentation2d"
    codebase: ClassVar[str | None] = None  # no OpenMMLab (mmseg) config translation here
    settings_cls: ClassVar[type | None] = SegmentationSettings
    default_configs: ClassVar[tuple[str, ...]] = ("configs/deploy_config.py",)  # the installed suites run it

    def __init__(self, cfg: DeployConfig) -> None:
        super().__init__(cfg)
        self.settings: SegmentationSettings = cfg.model_settings or SegmentationSettings()
        self._dataset: SegDataset | None = None

    # -- config -----------------------------------------------------------------------
    @classmethod
    def model_size(cls, cfg: DeployConfig) -> ModelSize:
        from .size import activations, unet_parameters

        s: SegmentationSettings = cfg.model_settings or SegmentationSettings()
        shape = declared_input_shape(cfg, GRAPH, cfg.model_io.input_name or "input")
        hw = tuple(shape[-2:]) if shape is not None else None
        return ModelSize(
            parameters={"base_channels": unet_parameters(s.in_channels, s.base_channels, s.depth, s.num_classes)},
            activations=activations(s.in_channels, s.base_channels, s.depth, s.num_classes, hw))  # type: ignore[arg-type]

    @classmethod
    def check_config(cls, cfg: DeployConfig) -> None:
        s: SegmentationSettings = cfg.model_settings or SegmentationSettings()
        ds = _dataset(cfg, s)
        if not len(ds):
            raise ConfigError("runtime_io.data_root", str(cfg.runtime_io.data_root),
                              f"a folder with images under img_dir/{s.split}/*{s.img_suffix}")
        if cfg.runtime_io.sample_idx >= len(ds):
            raise ConfigError("runtime_io.sample_idx", cfg.runtime_io.sample_idx, f"an index below {len(ds)}")
        io = cfg.model_io
        if io.input_shape is not None:
            c, *hw = io.input_shape
            if c != s.in_channels or len(hw) != 2 or any(d % s.stride for d in hw):
                raise ConfigError("model_io.input_shape", list(io.input_shape),
                                  f"({s.in_channels}, H, W) with H and W multiples of {s.stride} (2^(depth-1))")
        if io.output_shape is not None and (len(io.output_shape) != 3 or io.output_shape[0] != s.num_classes):
            raise ConfigError("model_io.output_shape", list(io.output_shape), f"({s.num_classes}, H, W)")

    # -- model ------------------------------------------------------------------------
    def build_model(self) -> Any:
        import torch

        from awml_harness.checkpoint import load_into, load_state_dict

        from .model import UNet

        s = self.settings
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.init_seed)
            model = UNet(s.in_channels, s.num_classes, s.base_channels, s.depth)
        if self.cfg.checkpoint_path is None:
            warnings.warn(f"{self.name}: checkpoint_path is None, using a random init (seed {s.init_seed}); "
                          "fine for export/verification, meaningless for mIoU", stacklevel=2)
        else:
            state = load_state_dict(self.cfg.checkpoint_path, allow_pickle=self.cfg.unsafe_load)
            load_into(model, state, strict=s.strict_load, source=str(self.cfg.checkpoint_path))
        return model.eval()

    def graph_names(self) -> tuple[str, ...]:
        return (GRAPH,)

    def _io_names(self) -> tuple[str, str]:
        return self.cfg.model_io.input_name or "input", self.cfg.model_io.output_name or "logits"

    def graphs(self, model: Any) -> Sequence[Graph]:
        in_name, out_name = self._io_names()
        example = self.preprocess(self.dataset()[self.cfg.runtime_io.sample_idx]).inputs[in_name]
        return [self.single_input_graph(GRAPH, model, example, in_name, out_name)]

    # -- data -------------------------------------------------------------------------
    def dataset(self) -> SegDataset:
        if self._dataset is None:
            self._dataset = _dataset(self.cfg, self.settings)
        return self._dataset

    def target(self, sample: SegSample) -> np.ndarray:
        return read_label(sample.seg_map_path)

    # -- pipeline ---------------------------------------------------------------------
    def preprocess(self, sample: SegSample) -> Prepared:
        in_name, _ = self._io_names()
        image = read_image(sample.img_path)
        h, w = image.shape[:2]
        stride = self.settings.stride
        if h % stride or w % stride:
            raise DataError(f"{sample.img_path}: image is {h}x{w}; this UNet (depth {self.settings.depth}) "
                            f"needs H and W multiples of {stride}")
        return Prepared(sample.sample_id, {in_name: normalize(image)}, {"size": (h, w)})

    def forward(self, prepared: Prepared, run_graph: GraphCaller, timer: StageTimer) -> dict[str, Any]:
        _, out_name = self._io_names()
        with timer(GRAPH):
            logits = run_graph(GRAPH, prepared.inputs)[out_name]
        with timer("argmax"):
            mask = np.argmax(np.asarray(logits), axis=1)  # (B, H, W) int64, ties -> lowest class
        return {out_name: logits, MASK: mask}

    def postprocess(self, outputs: Mapping[str, Any], prepared: Prepared) -> np.ndarray:
        return np.asarray(outputs[MASK])[0].astype(np.uint8)

    def evaluator(self) -> SegmentationEvaluator:
        return SegmentationEvaluator(self.settings.class_names, self.settings.ignore_index)
