"""An OpenMMLab (AWML/mmpretrain) calibration classifier config -> CalibrationSettings.

What is read (anything else in `model` or `test_pipeline` is named in one ConfigError):

    model            ImageClassifier
      backbone       ResNet depth=18, in_channels, base_channels (=stem_channels), style="pytorch",
                     num_stages=4, out_indices=(3,), no deep stem / avg-down
      neck           GlobalAveragePooling
      head           LinearClsHead num_classes, in_channels (= 8 * base_channels)
    normalisation    the 5 channels are /255 in the transform (native `data.py`); the data
                     preprocessor must add nothing: `data_preprocessor` empty, or mean 0 /
                     std 1 per channel, no channel swap
    test_pipeline    CalibrationClassificationTransform: enable_augmentation=False,
                     max_depth -> depth_scale with points beyond dropped (older configs:
                     transform_config.depth_scale, beyond saturates), dilation_size (or
                     transform_config.radius) -> point_radius, miscalibration_probability
                     0 / 0.5 / 1 -> which states are evaluated; PackInputs
    checkpoint       mmpretrain names == native names (`backbone.layer1.0.conv1.weight`,
                     `head.fc.weight`), identity table.
"""

from __future__ import annotations

from typing import Any

from awml_harness.openmmlab import ConfigReader, Rule

KEY_MAP: tuple[Rule, ...] = ()  # mmpretrain ImageClassifier names are the native names

_TRAIN_ONLY = ("init_cfg", "train_cfg", "pretrained", "frozen_stages", "norm_eval", "loss", "topk", "cal_acc",
               "with_cp", "zero_init_residual", "drop_path_rate")


def _preprocessor(r: ConfigReader, path: str, channels: Any) -> None:
    node = r.check_keys(path, ("mean", "std", "to_rgb", "num_classes"), ())
    if not node:
        return
    n = channels if isinstance(channels, int) else None
    r.expect(f"{path}.mean", lambda v: all(x == 0 for x in v) and (n is None or len(v) == n),
             "zeros (one per channel): the transform already scales to 0-1", None)
    r.expect(f"{path}.std", lambda v: all(x == 1 for x in v) and (n is None or len(v) == n),
             "ones (one per channel): the transform already scales to 0-1", None)
    r.expect(f"{path}.to_rgb", lambda v: v is False, "False: channels stay B, G, R, depth, intensity", False)


def translate(r: ConfigReader) -> dict[str, Any]:
    out: dict[str, Any] = {}
    m = "model"
    r.check_keys(m, ("backbone", "neck", "head", "data_preprocessor"), _TRAIN_ONLY)
    r.expect_type(m, ("ImageClassifier",))

    bb = f"{m}.backbone"
    r.check_keys(bb, ("depth", "in_channels", "base_channels", "stem_channels", "num_stages", "out_indices",
                      "style", "deep_stem", "avg_down", "strides", "dilations", "norm_cfg"), _TRAIN_ONLY)
    r.expect_type(bb, ("ResNet",))
    r.expect(f"{bb}.depth", lambda v: v == 18, "18 (BasicBlock ResNet-18)")
    out["in_channels"] = r.expect(f"{bb}.in_channels", lambda v: isinstance(v, int) and v > 0, "a positive integer", 3)
    base = r.expect(f"{bb}.base_channels", lambda v: isinstance(v, int) and v > 0, "a positive integer", 64)
    out["base_channels"] = base
    r.expect(f"{bb}.stem_channels", lambda v: v == base, f"{base} (= base_channels: the native stem width)", base)
    r.expect(f"{bb}.num_stages", lambda v: v == 4, "4", 4)
    r.expect(f"{bb}.out_indices", lambda v: tuple(v) == (3,), "(3,): the last stage only", (3,))
    r.expect(f"{bb}.style", lambda v: v == "pytorch", "'pytorch' (stride on the 3x3 conv)", "pytorch")
    r.expect(f"{bb}.deep_stem", lambda v: v is False, "False", False)
    r.expect(f"{bb}.avg_down", lambda v: v is False, "False", False)
    r.expect(f"{bb}.strides", lambda v: tuple(v) == (1, 2, 2, 2), "(1, 2, 2, 2)", (1, 2, 2, 2))
    r.expect(f"{bb}.dilations", lambda v: tuple(v) == (1, 1, 1, 1), "(1, 1, 1, 1)", (1, 1, 1, 1))
    r.expect(f"{bb}.norm_cfg", lambda v: dict(v).get("type") == "BN" and set(v) <= {"type", "requires_grad"},
             "BatchNorm with default eps/momentum", None)

    nk = f"{m}.neck"
    r.check_keys(nk, (), ())
    r.expect_type(nk, ("GlobalAveragePooling",))

    hd = f"{m}.head"
    r.check_keys(hd, ("num_classes", "in_channels"), _TRAIN_ONLY)
    r.expect_type(hd, ("LinearClsHead",))
    out["num_classes"] = r.expect(f"{hd}.num_classes", lambda v: isinstance(v, int) and v > 0, "a positive integer")
    if isinstance(base, int):
        r.expect(f"{hd}.in_channels", lambda v: v == 8 * base, f"{8 * base} (= 8 * base_channels)")

    # normalisation: model.data_preprocessor, or the top-level one mmpretrain merges in
    _preprocessor(r, f"{m}.data_preprocessor", out["in_channels"])
    if r.get("data_preprocessor", None) is not None:
        _preprocessor(r, "data_preprocessor", out["in_channels"])

    def transform(path: str, t: dict[str, Any]) -> None:
        r.check_keys(path, ("enable_augmentation", "transform_config", "undistort", "max_depth", "dilation_size",
                            "miscalibration_probability"),
                     ("mode", "data_root", "projection_vis_dir", "results_vis_dir", "binary_save_dir", "validation",
                      "test", "debug"))
        r.expect(f"{path}.enable_augmentation", lambda v: v is False, "False in the test pipeline", False)
        tc = f"{path}.transform_config"
        r.check_keys(tc, ("depth_scale", "radius"), ("crop_ratio", "max_distortion", "rgb_weight"))
        # current AWML: max_depth (points beyond are dropped) and dilation_size on the transform;
        # older configs: transform_config.depth_scale / .radius (points beyond saturate)
        max_depth = r.expect(f"{path}.max_depth", lambda v: isinstance(v, (int, float)) and v > 0,
                             "a positive distance in metres", None)
        depth = r.get(f"{tc}.depth_scale", None)
        if max_depth is not None and depth is not None and depth != max_depth:
            r.problem(f"{tc}.depth_scale", depth, f"unset or equal to max_depth={max_depth}")
        if max_depth is not None:
            out["depth_scale"] = float(max_depth)
            out["drop_beyond_depth"] = True
        elif depth is not None:
            out["depth_scale"] = depth
        dilation = r.expect(f"{path}.dilation_size", lambda v: isinstance(v, int) and v >= 0,
                            "an integer >= 0 (each point paints a (2d+1)^2 patch)", None)
        radius = r.get(f"{tc}.radius", None)
        if dilation is not None and radius is not None and radius != dilation:
            r.problem(f"{tc}.radius", radius, f"unset or equal to dilation_size={dilation}")
        if dilation is not None or radius is not None:
            out["point_radius"] = dilation if dilation is not None else radius
        p = r.expect(f"{path}.miscalibration_probability", lambda v: v in (0, 0.5, 1),
                     "0, 0.5 or 1: the harness evaluates a deterministic set (0.5: every sample calibrated and "
                     "miscalibrated; 0 / 1: one state only), not a random draw", None)
        if p is not None:
            out["miscalibration_probability"] = float(p)

    def pack(path: str, t: dict[str, Any]) -> None:
        r.check_keys(path, ("input_key",), ("meta_keys", "algorithm_keys"))
        r.expect(f"{path}.input_key", lambda v: v == "fused_img", "'fused_img' (the 5-channel image)", "fused_img")

    r.pipeline("test_pipeline", {"CalibrationClassificationTransform": transform, "PackInputs": pack})
    return out


def load(model_cfg: Any, config_dir: Any) -> Any:
    """Settings from an OpenMMLab config, or None when `model_cfg` is the native form."""
    from awml_harness.openmmlab import load_settings

    from .project import CalibrationSettings

    return load_settings(CalibrationSettings, model_cfg, config_dir, translate)


def build_reference(settings: Any) -> Any:
    """`reference="registry"`: mmpretrain's ImageClassifier from the config, called as
    input -> logits like the native model (backbone -> neck -> head)."""
    from torch import nn

    from awml_harness.openmmlab import build_with_registry

    classifier = build_with_registry(settings.openmmlab_config, "mmpretrain")

    class RegistryClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone, self.neck, self.head = classifier.backbone, classifier.neck, classifier.head

        def forward(self, input: Any) -> Any:  # noqa: A002 - the ONNX input name
            return self.head(self.neck(self.backbone(input)))

    return RegistryClassifier()
