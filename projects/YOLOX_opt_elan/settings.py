"""Typed `model_cfg` of a YOLOX_opt_elan deploy config.

Kept free of torch so configs validate at pytest start without importing it. The
width/depth factors and channel rules mirror AWML's ELAN-Darknet + PAFPN-ELAN +
YOLOXHead, so a checkpoint trained there fits the module tree built from these values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from awml_harness.config.errors import ConfigError

CLASS_NAMES: tuple[str, ...] = (
    "unknown", "car", "truck", "bus", "trailer", "motorcycle", "pedestrian", "bicycle",
)

Activation = Literal["ReLU6", "ReLU", "SiLU", "LeakyReLU"]


@dataclass(frozen=True)
class YoloxSettings:
    """Model, preprocessing and postprocessing settings.

    `input_size` is (height, width) of the network input; A (the anchor-point count of
    the exported output) follows from it and `strides`. `export_activation` replaces
    `activation` in the graph that is exported and run by every backend (AWML trains with
    ReLU6 and deploys with ReLU); None keeps the trained activation.
    """

    class_names: tuple[str, ...] = CLASS_NAMES
    input_size: tuple[int, int] = (960, 960)
    widen_factor: float = 0.5
    deepen_factor: float = 0.33
    neck_num_blocks: int | None = None  # None: max(round(3 * deepen_factor), 1)
    head_stacked_convs: int = 2
    strides: tuple[int, ...] = (8, 16, 32)
    activation: Activation = "ReLU6"
    export_activation: Activation | None = "ReLU"
    pad_value: float = 114.0
    score_threshold: float = 0.01
    nms_iou_threshold: float = 0.65
    #: boxes kept after NMS, best first; None: no cap (mmdet's YOLOXHead caps only through
    #: `test_cfg.nms.max_num`, which is what a translated config sets)
    max_detections: int | None = 300
    strict_load: bool = True
    seed: int = 0  # random init when checkpoint_path is None
    #: the OpenMMLab model config these settings were derived from (set by the loader)
    openmmlab_config: str | None = None
    #: "registry": build the PyTorch reference through mmdet's registry ([mm] extra)
    reference: Literal["native", "registry"] = "native"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def neck_blocks(self) -> int:
        if self.neck_num_blocks is not None:
            return self.neck_num_blocks
        return max(round(3 * self.deepen_factor), 1)

    def num_priors(self) -> int:
        """A: anchor points over all levels (18900 for 960x960 at strides 8/16/32)."""
        h, w = self.input_size
        return sum((h // s) * (w // s) for s in self.strides)

    def validate(self, key: str) -> None:
        if not self.class_names:
            raise ConfigError(f"{key}.class_names", list(self.class_names), "at least one class name")
        if len(self.strides) != 3:
            raise ConfigError(f"{key}.strides", list(self.strides), "three strides (P3, P4, P5), e.g. [8, 16, 32]")
        for dim in self.input_size:
            if dim <= 0 or dim % max(self.strides) != 0:
                raise ConfigError(f"{key}.input_size", list(self.input_size),
                                  f"positive sizes divisible by the largest stride {max(self.strides)}")
        for name in ("widen_factor", "deepen_factor"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{key}.{name}", getattr(self, name), "a positive number")
        if int(32 * self.widen_factor) < 1:
            raise ConfigError(f"{key}.widen_factor", self.widen_factor, "a factor >= 1/32 (stem needs >= 1 channel)")
        for name in ("score_threshold", "nms_iou_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{key}.{name}", getattr(self, name), "a number in [0, 1]")
        if self.max_detections is not None and self.max_detections <= 0:
            raise ConfigError(f"{key}.max_detections", self.max_detections, "a positive integer or None (no cap)")
        if self.neck_num_blocks is not None and self.neck_num_blocks <= 0:
            raise ConfigError(f"{key}.neck_num_blocks", self.neck_num_blocks, "a positive integer or None")
        if self.head_stacked_convs < 0:
            raise ConfigError(f"{key}.head_stacked_convs", self.head_stacked_convs, "an integer >= 0")
