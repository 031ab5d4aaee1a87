# CalibrationStatusClassification, small default: what `pytest suites/ -k calibration` runs.
#
# A narrow ResNet-18 (base_channels=16) trained on the shipped synthetic data
# (fixtures/calibration/train.py; accuracy on the eval split >= 0.90) at the data's
# native 5x128x192, so export, verification and evaluation take seconds on a CPU.
# The 20 eval samples are evaluated twice each (calibrated / miscalibrated) = 40 items.
# Data paths are relative to this file ({{ fileDirname }}: a clone and an installed wheel
# alike), the work dir to the pytest rootdir.

_data_root = "{{ fileDirname }}/../../../fixtures/calibration/data"

project = "CalibrationStatusClassification"
task_type = "classification"
checkpoint_path = "{{ fileDirname }}/../../../fixtures/calibration/checkpoint.pth"

model_cfg = dict(
    in_channels=5,
    num_classes=2,
    base_channels=16,
    depth_scale=80.0,
    point_radius=0,
    input_size=None,  # native image size (128x192)
    miscalibration_seed=0,
    min_angle_deg=1.0,
    max_angle_deg=10.0,
    min_translation_m=0.05,
    max_translation_m=0.2,
)

export = dict(
    mode="onnx",  # onnx | trt | both | none
    work_dir="work_dirs/calibration_status_classification",
)

runtime_io = dict(
    info_file=_data_root + "/calibration_infos_eval.pkl",
    data_root=_data_root,
    sample_idx=0,
)

model_io = dict(
    input_name="input",
    input_shape=(5, 128, 192),
    input_dtype="float32",
    output_name="output",
    output_shape=(2,),
    batch_size=1,
)

onnx_config = dict(
    opset_version=17,
    do_constant_folding=True,
    simplify=False,
    exporter="torchscript",
    save_file="calibration_classifier.onnx",
)

backend_config = dict(
    common_config=dict(precision_policy="auto", max_workspace_size=1 << 30),
    model_inputs=[
        dict(input_shapes=dict(input=dict(min_shape=(1, 5, 128, 192), opt_shape=(1, 5, 128, 192), max_shape=(1, 5, 128, 192)))),
    ],
)

_pytorch_cpu_vs_onnx_cpu = dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnx", test_device="cpu")
_onnx_cpu_vs_tensorrt = dict(ref_backend="onnx", ref_device="cpu", test_backend="tensorrt", test_device="cuda:0")

verification = dict(
    enabled=True,
    num_verify_samples=3,
    default=dict(atol=1e-4, rtol=1e-3),
    # TensorRT with precision_policy="auto" may pick TF32 kernels
    pairs={"onnx->tensorrt": dict(atol=1e-2, rtol=1e-2)},
    # the int8 graph is held to the int8 floor (atol = rtol = 0.1; its logits moved up to 0.36
    # of ~6 on the verification samples, measured) and to its own metric gate below
    scenarios=dict(
        # the second scenario verifies the fp16 graph (what TensorRT 11 builds from) on CPU, the
        # third the int8 Q/DQ graph (what TensorRT builds int8 engines from)
        onnx=[_pytorch_cpu_vs_onnx_cpu, {**_pytorch_cpu_vs_onnx_cpu, "test_precision": "fp16"},
              {**_pytorch_cpu_vs_onnx_cpu, "test_precision": "int8"}],
        both=[_pytorch_cpu_vs_onnx_cpu, _onnx_cpu_vs_tensorrt],
        trt=[_onnx_cpu_vs_tensorrt],
        none=[],
    ),
)

evaluation = dict(
    enabled=True,
    num_samples=-1,
    reference="pytorch",
    backends=dict(
        pytorch=dict(enabled=True, device="cpu"),
        onnx=dict(enabled=True, device="cpu"),
        # fp16 ONNX (onnxconverter-common / ModelOpt conversion) on ONNX Runtime CPU
        **{"onnx-fp16": dict(enabled=True, device="cpu")},
        # the int8 Q/DQ ONNX (TensorRT's explicit-quantization form) on ONNX Runtime CPU
        **{"onnx-int8": dict(enabled=True, device="cpu")},
    ),
    metric_tolerance={"*": 0.02},
)

# int8 (the onnx-int8 backend; docs/int8.md): calibrated on 32 samples of the train split,
# so none of the evaluated samples is a calibration sample
quantization = dict(
    info_file=_data_root + "/calibration_infos_train.pkl",
    num_samples=32,
    method="minmax",
)
