# CalibrationStatusClassification, full size: the deployed shape, export + verification only.
#
# ResNet-18 at AWML's width (base_channels=64) on 5x1860x2880 inputs with dynamic H/W
# and a TensorRT profile around that size. No trained full-width checkpoint ships, so
# checkpoint_path=None builds a seeded random init (the harness warns); accuracy would
# be meaningless, hence evaluation is disabled. Point checkpoint_path at an AWML
# checkpoint (mmpretrain state_dict layout) to verify a real model.
#
# The traced / verified inputs are real samples: preprocessing resizes each shipped
# 128x192 image to 1860x2880 (nearest neighbour) and scales the intrinsics to match
# before projecting the LiDAR, so the 5-channel tensor is full-size and consistent.

_base_ = ["./deploy_config.py"]

checkpoint_path = None

model_cfg = dict(
    base_channels=64,
    input_size=(1860, 2880),
    point_radius=2,  # AWML paints 5x5 patches at full resolution
)

export = dict(mode="onnx", work_dir="work_dirs/calibration_status_classification_full")

model_io = dict(input_shape=(5, 1860, 2880), batch_size=1)

onnx_config = dict(
    save_file="calibration_classifier_full.onnx",
    dynamic_axes=dict(input={2: "height", 3: "width"}),
)

backend_config = dict(
    model_inputs=[
        dict(input_shapes=dict(input=dict(min_shape=(1, 5, 960, 1440), opt_shape=(1, 5, 1860, 2880), max_shape=(1, 5, 2160, 3840)))),
    ],
)

verification = dict(
    num_verify_samples=1,
    # random-init logits are small (~0.02 measured), so the absolute tolerance is tight;
    # measured pytorch:cpu vs onnx:cpu max abs diff at 1860x2880: 7.5e-9
    default=dict(atol=1e-5, rtol=1e-3),
    pairs={"onnx->tensorrt": dict(atol=1e-3, rtol=1e-2)},
)

# a full-size CPU forward takes seconds: no latency tests here (GPU machines: latency=True)
evaluation = dict(enabled=False, latency=False)
