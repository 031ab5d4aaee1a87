"""An OpenMMLab (AWML) YOLOX_opt_elan config -> :class:`YoloxSettings`, without mmdet.

What is read (everything else in `model` and `test_pipeline` must be known, or it is
named in one ConfigError):

    test_pipeline  Resize(scale=(w, h), keep_ratio=True)   -> input_size (h, w)
                   Pad(pad_to_square=True | size=(w, h), pad_val=114 or dict(img=(114,)*3))
                                                            -> pad_value; mmdet pads bottom/right,
                                                               which is what the harness does
    model.backbone ELANDarknet widen_factor, deepen_factor, act_cfg
    model.neck     YOLOXPAFPN_ELAN num_elan_blocks (widths are checked against widen_factor)
    model.bbox_head YOLOXHead num_classes, stacked_convs, strides, act_cfg
    model.test_cfg score_thr, nms=dict(type="nms", iou_threshold, max_num) (the only cap
                     mmdet's YOLOXHead applies; its max_per_img is accepted and, as
                     in mmdet, caps nothing)
    class names    metainfo.classes | classes | class_names | test_dataloader.dataset.metainfo.classes

Activation: one act_cfg type for backbone, neck and head; a model trained with ReLU6 is
exported with ReLU (`export_activation="ReLU"`, AWML's deploy switch), any other
activation is exported as trained.

Checkpoint names: the native model mirrors mmdet/AWML names (`backbone.stem.conv.0.conv`,
`neck.top_down_blocks.0.final_conv`, `bbox_head.multi_level_conv_cls.2` ...), so the table
is identity; the core drops `data_preprocessor.*` and a `module.` prefix.
"""

from __future__ import annotations

from typing import Any

from awml_harness.openmmlab import ConfigReader, Rule

from .settings import YoloxSettings

#: OpenMMLab (mmdet / AWML) checkpoint key -> native key; names already match.
KEY_MAP: tuple[Rule, ...] = (
    Rule(r"^ema_", None, "stray EMA copies (mmengine keeps EMA weights in `ema_state_dict`, not here)"),
)

ACTIVATIONS = ("ReLU6", "ReLU", "SiLU", "LeakyReLU")
_BASE_STAGE_OUT = (128, 256, 512)  # ELANDarknet P5 stages 2..4 at widen_factor=1
_NECK_BASE = 128
_BN_DEFAULT = {"type": "BN", "momentum": 0.03, "eps": 0.001}
_TRAIN_ONLY = ("init_cfg", "train_cfg", "frozen_stages", "norm_eval", "loss_cls", "loss_bbox", "loss_obj",
               "loss_l1", "pretrained")
_CLASS_PATHS = ("metainfo.classes", "classes", "class_names", "test_dataloader.dataset.metainfo.classes")


def _bn_ok(norm: Any) -> bool:
    return norm is None or (isinstance(norm, dict) and {**_BN_DEFAULT, **norm} == _BN_DEFAULT)


def _act(r: ConfigReader, path: str) -> str | None:
    act = r.get(f"{path}.act_cfg", {"type": "SiLU"})
    if not isinstance(act, dict) or act.get("type") not in ACTIVATIONS:
        r.problem(f"{path}.act_cfg", act, f"dict(type=...) with one of {list(ACTIVATIONS)}")
        return None
    extra = {k: v for k, v in act.items() if k not in ("type", "inplace")}
    if act["type"] == "LeakyReLU" and extra != {"negative_slope": 0.1}:
        r.problem(f"{path}.act_cfg", act, "LeakyReLU with negative_slope=0.1 (the native slope)")
    elif act["type"] != "LeakyReLU" and extra:
        r.problem(f"{path}.act_cfg", act, f"dict(type={act['type']!r}) without other arguments")
    return str(act["type"])


def translate(r: ConfigReader) -> dict[str, Any]:
    out: dict[str, Any] = {}
    m = "model"
    r.check_keys(m, ("data_preprocessor", "backbone", "neck", "bbox_head", "test_cfg"), _TRAIN_ONLY)
    r.expect_type(m, ("YOLOX",))

    # -- preprocessing: data_preprocessor + test_pipeline ---------------------------------
    dp = f"{m}.data_preprocessor"
    r.check_keys(dp, ("mean", "std", "bgr_to_rgb", "rgb_to_bgr", "pad_size_divisor", "pad_value"),
                 ("batch_augments",))
    if r.get(f"{dp}.type", "DetDataPreprocessor") not in ("DetDataPreprocessor", "mmdet.DetDataPreprocessor"):
        r.problem(f"{dp}.type", r.get(f"{dp}.type"), "'DetDataPreprocessor'")
    r.expect(f"{dp}.mean", lambda v: v is None or all(x == 0 for x in v), "None or zeros: the network takes BGR 0-255", None)
    r.expect(f"{dp}.std", lambda v: v is None or all(x == 1 for x in v), "None or ones: the network takes BGR 0-255", None)
    for flag in ("bgr_to_rgb", "rgb_to_bgr"):
        r.expect(f"{dp}.{flag}", lambda v: v is False, "False: the network takes BGR as loaded", False)

    def resize(path: str, t: dict[str, Any]) -> None:
        r.check_keys(path, ("scale", "keep_ratio", "interpolation"), ("backend",))
        scale = r.expect(f"{path}.scale", lambda v: len(v) == 2 and all(int(x) > 0 for x in v), "(width, height)")
        r.expect(f"{path}.keep_ratio", lambda v: v is True, "True: the harness letterboxes keeping the aspect ratio")
        r.expect(f"{path}.interpolation", lambda v: v == "bilinear", "'bilinear' (cv2.INTER_LINEAR)", "bilinear")
        if scale is not None and len(scale) == 2:
            out["input_size"] = (int(scale[1]), int(scale[0]))

    def pad(path: str, t: dict[str, Any]) -> None:
        r.check_keys(path, ("pad_to_square", "size", "pad_val", "padding_mode"), ())
        r.expect(f"{path}.padding_mode", lambda v: v == "constant", "'constant'", "constant")
        val = r.get(f"{path}.pad_val", {"img": 0})
        img = val.get("img", 0) if isinstance(val, dict) else val
        values = list(img) if isinstance(img, (list, tuple)) else [img]
        if not values or any(not isinstance(x, (int, float)) or x != values[0] for x in values):
            r.problem(f"{path}.pad_val", val, "one value for every channel, e.g. dict(img=(114, 114, 114))")
        else:
            out["pad_value"] = float(values[0])
        square, size = t.get("pad_to_square", False), t.get("size")
        if not square and size is None:
            r.problem(f"{path}", t, "pad_to_square=True or size=(w, h): the exported input has a fixed size")
        out["_pad"] = (path, square, size)

    r.pipeline("test_pipeline", {"Resize": resize, "Pad": pad},
               ignored=("LoadImageFromFile", "LoadAnnotations", "PackDetInputs"))
    if "_pad" in out:
        path, square, size = out.pop("_pad")
        hw = out.get("input_size")
        if hw is not None:
            if square and hw[0] != hw[1]:
                r.problem(f"{path}.pad_to_square", True, f"a square Resize scale (got {hw[1]}x{hw[0]})")
            if size is not None and (int(size[1]), int(size[0])) != hw:
                r.problem(f"{path}.size", size, f"the Resize scale {[hw[1], hw[0]]}")
    elif "input_size" in out:
        r.problem("test_pipeline", None, "a Pad transform after Resize (the exported input has a fixed size)")

    # -- network ---------------------------------------------------------------------------
    bb, nk, hd = f"{m}.backbone", f"{m}.neck", f"{m}.bbox_head"
    r.check_keys(bb, ("deepen_factor", "widen_factor", "out_indices", "act_cfg", "norm_cfg"), _TRAIN_ONLY)
    r.expect_type(bb, ("ELANDarknet",))
    widen = r.expect(f"{bb}.widen_factor", lambda v: v > 0, "a positive number")
    out["widen_factor"] = widen
    out["deepen_factor"] = r.expect(f"{bb}.deepen_factor", lambda v: v > 0, "a positive number")
    r.expect(f"{bb}.out_indices", lambda v: tuple(v) == (2, 3, 4), "(2, 3, 4): strides 8, 16, 32", (2, 3, 4))
    r.expect(f"{bb}.norm_cfg", _bn_ok, f"the native BatchNorm {_BN_DEFAULT}", None)

    r.check_keys(nk, ("in_channels", "out_channels", "num_elan_blocks", "act_cfg", "norm_cfg"), _TRAIN_ONLY)
    r.expect_type(nk, ("YOLOXPAFPN_ELAN",))
    r.expect(f"{nk}.norm_cfg", _bn_ok, f"the native BatchNorm {_BN_DEFAULT}", None)
    blocks = r.get(f"{nk}.num_elan_blocks", None)
    if blocks is not None:
        out["neck_num_blocks"] = blocks
    width = None
    if isinstance(widen, (int, float)) and widen > 0:
        width = int(_NECK_BASE * widen)
        ins = [int(c * widen) for c in _BASE_STAGE_OUT]
        r.expect(f"{nk}.in_channels", lambda v: list(v) == ins, f"{ins} (ELANDarknet outputs at widen_factor={widen})")
        r.expect(f"{nk}.out_channels", lambda v: v == width, f"{width} (= int({_NECK_BASE} * widen_factor))")

    r.check_keys(hd, ("num_classes", "in_channels", "feat_channels", "stacked_convs", "strides", "act_cfg",
                      "norm_cfg", "use_depthwise", "dcn_on_last_conv", "conv_bias"), _TRAIN_ONLY)
    r.expect_type(hd, ("YOLOXHead",))
    num_classes = r.expect(f"{hd}.num_classes", lambda v: isinstance(v, int) and v > 0, "a positive integer")
    if width is not None:
        for k in ("in_channels", "feat_channels"):
            r.expect(f"{hd}.{k}", lambda v: v == width, f"{width} (the neck width)", width)
    out["head_stacked_convs"] = r.expect(f"{hd}.stacked_convs", lambda v: isinstance(v, int) and v >= 0,
                                         "an integer >= 0", 2)
    out["strides"] = tuple(r.expect(f"{hd}.strides", lambda v: len(v) == 3, "three strides", (8, 16, 32)) or ())
    r.expect(f"{hd}.use_depthwise", lambda v: v is False, "False", False)
    r.expect(f"{hd}.dcn_on_last_conv", lambda v: v is False, "False", False)
    r.expect(f"{hd}.conv_bias", lambda v: v in ("auto", False), "'auto' (no bias before BatchNorm)", "auto")
    r.expect(f"{hd}.norm_cfg", _bn_ok, f"the native BatchNorm {_BN_DEFAULT}", None)

    acts = {p: _act(r, p) for p in (bb, nk, hd)}
    kinds = {a for a in acts.values() if a is not None}
    if len(kinds) > 1:
        r.problem(f"{bb}.act_cfg", acts, "one activation for backbone, neck and head")
    elif kinds:
        act = kinds.pop()
        out["activation"] = act
        out["export_activation"] = "ReLU" if act == "ReLU6" else None

    # -- postprocessing ----------------------------------------------------------------------
    tc = f"{m}.test_cfg"
    r.check_keys(tc, ("score_thr", "nms", "max_per_img"), ("nms_pre", "min_bbox_size"))
    out["score_threshold"] = r.expect(f"{tc}.score_thr", lambda v: 0 <= v <= 1, "a number in [0, 1]")
    r.check_keys(f"{tc}.nms", ("iou_threshold", "max_num"), ())
    r.expect(f"{tc}.nms.type", lambda v: v == "nms", "'nms' (class-aware hard NMS)")
    out["nms_iou_threshold"] = r.expect(f"{tc}.nms.iou_threshold", lambda v: 0 <= v <= 1, "a number in [0, 1]")
    # mmdet's YOLOXHead keeps every box NMS keeps: mmcv's batched_nms cuts at nms.max_num
    # (when > 0); test_cfg.max_per_img is never read by that head, so it caps nothing here either
    max_num = r.expect(f"{tc}.nms.max_num", lambda v: isinstance(v, int), "an integer (<= 0: no cap)", -1)
    out["max_detections"] = max_num if isinstance(max_num, int) and max_num > 0 else None

    # -- classes -----------------------------------------------------------------------------
    names = next((r.get(p, None) for p in _CLASS_PATHS if r.get(p, None) is not None), None)
    if names is None:
        r.problem("metainfo.classes", None, f"the class names at one of {list(_CLASS_PATHS)}")
    else:
        out["class_names"] = tuple(names)
        if isinstance(num_classes, int) and len(names) != num_classes:
            r.problem(f"{hd}.num_classes", num_classes, f"{len(names)}, the number of class names {list(names)}")
    return out


def load(model_cfg: Any, config_dir: Any) -> YoloxSettings | None:
    """Settings from an OpenMMLab config, or None when `model_cfg` is the native form."""
    from awml_harness.openmmlab import load_settings

    return load_settings(YoloxSettings, model_cfg, config_dir, translate)


def build_reference(settings: YoloxSettings) -> Any:
    """`reference="registry"`: the mmdet registry builds the model from the OpenMMLab
    config (so custom-registered modules are the reference), wrapped so it has the
    native call signature: images -> (cls_scores, bbox_preds, objectnesses) per level."""
    from torch import nn

    from awml_harness.openmmlab import build_with_registry

    detector = build_with_registry(settings.openmmlab_config, "mmdet")

    class RegistryYOLOX(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone, self.neck, self.bbox_head = detector.backbone, detector.neck, detector.bbox_head

        def forward(self, images: Any) -> Any:
            return self.bbox_head(self.neck(self.backbone(images)))

    return RegistryYOLOX()
