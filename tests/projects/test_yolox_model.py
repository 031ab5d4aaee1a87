"""YOLOX_opt_elan model: parameter layout, export wrapper, activation swap."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from projects.YOLOX_opt_elan.model import (  # noqa: E402
    YOLOXExportWrapper,
    build_yolox,
    export_module,
    replace_activation,
)
from projects.YOLOX_opt_elan.pipeline import num_priors  # noqa: E402
from projects.YOLOX_opt_elan.settings import YoloxSettings  # noqa: E402

TINY = YoloxSettings(input_size=(64, 96), widen_factor=0.125, deepen_factor=0.33)


@pytest.fixture(scope="module")
def tiny_model():
    return build_yolox(TINY).eval()


def test_prior_count_follows_input_size():
    assert YoloxSettings(input_size=(960, 960)).num_priors() == 18900 == 120**2 + 60**2 + 30**2
    assert num_priors((960, 960), (8, 16, 32)) == 18900
    assert num_priors((192, 192), (8, 16, 32)) == 756
    assert TINY.num_priors() == 8 * 12 + 4 * 6 + 2 * 3


def test_state_dict_keys_follow_mmdet_layout(tiny_model):
    keys = set(tiny_model.state_dict())
    assert {k.split(".")[0] for k in keys} == {"backbone", "neck", "bbox_head"}
    for key in (
        "backbone.stem.conv.0.conv.weight",
        "backbone.stem.conv.1.bn.running_var",
        "backbone.stage1.0.conv.weight",
        "backbone.stage2.1.main_conv.conv.weight",
        "backbone.stage2.1.short_conv.bn.weight",
        "backbone.stage2.1.blocks.0.conv1.conv.weight",
        "backbone.stage4.1.final_conv.bn.bias",
        "neck.reduce_layers.0.conv.weight",
        "neck.top_down_blocks.1.final_conv.conv.weight",
        "neck.downsamples.0.bn.weight",
        "neck.bottom_up_blocks.1.blocks.0.conv2.conv.weight",
        "neck.out_convs.2.conv.weight",
        "bbox_head.multi_level_cls_convs.0.0.conv.weight",
        "bbox_head.multi_level_reg_convs.2.1.bn.running_mean",
        "bbox_head.multi_level_conv_cls.0.weight",
        "bbox_head.multi_level_conv_reg.1.bias",
        "bbox_head.multi_level_conv_obj.2.weight",
    ):
        assert key in keys, key
    # convs followed by BN carry no bias, as mmcv's ConvModule builds them
    assert "backbone.stem.conv.0.conv.bias" not in keys
    assert tiny_model.state_dict()["bbox_head.multi_level_conv_cls.0.weight"].shape[0] == 8


def test_widths_scale_with_widen_factor():
    m = build_yolox(YoloxSettings(widen_factor=0.5, deepen_factor=0.33))
    sd = m.state_dict()
    assert sd["backbone.stem.conv.0.conv.weight"].shape[0] == 16
    assert sd["backbone.stage4.0.conv.weight"].shape[0] == 256
    assert sd["neck.out_convs.0.conv.weight"].shape[0] == 64
    assert sd["bbox_head.multi_level_conv_cls.0.weight"].shape[1] == 64


def test_random_init_is_seeded():
    a = build_yolox(TINY).state_dict()
    b = build_yolox(TINY).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_relu6_replaced_by_relu_for_export(tiny_model):
    n_relu6 = sum(type(m) is torch.nn.ReLU6 for m in tiny_model.modules())
    assert n_relu6 > 0
    exported = export_module(tiny_model, TINY)
    assert sum(type(m) is torch.nn.ReLU6 for m in exported.modules()) == 0
    assert sum(type(m) is torch.nn.ReLU for m in exported.modules()) == n_relu6
    # the trained model is left untouched
    assert sum(type(m) is torch.nn.ReLU6 for m in tiny_model.modules()) == n_relu6
    assert replace_activation(torch.nn.Sequential(torch.nn.ReLU6(), torch.nn.Hardtanh()), "ReLU6", "ReLU") == 1


def test_export_activation_none_keeps_trained_activation(tiny_model):
    settings = YoloxSettings(input_size=(64, 96), widen_factor=0.125, export_activation=None)
    exported = export_module(tiny_model, settings)
    assert any(type(m) is torch.nn.ReLU6 for m in exported.modules())


def test_wrapper_output_layout(tiny_model):
    wrapper = YOLOXExportWrapper(tiny_model).eval()
    x = torch.rand(2, 3, *TINY.input_size) * 255
    with torch.no_grad():
        out = wrapper(x)
        cls, box, obj = tiny_model(x)
    assert out.shape == (2, TINY.num_priors(), 13)
    n0 = cls[0].shape[2] * cls[0].shape[3]
    # level 0 first, row-major over (y, x); raw box, sigmoid obj, sigmoid cls
    torch.testing.assert_close(out[:, :n0, :4], box[0].flatten(2).permute(0, 2, 1))
    torch.testing.assert_close(out[:, :n0, 4], obj[0].sigmoid().flatten(1))
    torch.testing.assert_close(out[:, -6:, 5:], cls[2].sigmoid().flatten(2).permute(0, 2, 1))
    assert float(out[..., 4:].min()) >= 0 and float(out[..., 4:].max()) <= 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's TorchScript exporter notice
def test_onnx_export_names_and_shape(tiny_model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    wrapper = export_module(tiny_model, TINY)
    x = (torch.rand(1, 3, *TINY.input_size) * 255).float()
    path = tmp_path / "yolox.onnx"
    torch.onnx.export(wrapper, (x,), str(path), input_names=["images"], output_names=["output"],
                      opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["images"]
    (out,) = sess.run(["output"], {"images": x.numpy()})
    with torch.no_grad():
        ref = wrapper(x).numpy()
    assert out.shape == (1, TINY.num_priors(), 13)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-3)
