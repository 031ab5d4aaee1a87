# SemanticSegmentation with the int8 backend: the small configuration plus `onnx-int8`, the
# Q/DQ ONNX that TensorRT builds int8 engines from, verified and evaluated on CPU in ONNX
# Runtime (docs/int8.md). The shipped data is the evaluated split only, so the 16 calibration
# samples (all of it) are also evaluated; the metrics JSON and the report say so.

_base_ = ["./deploy_config.py"]

_pytorch_cpu_vs_onnx_cpu = dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnx", test_device="cpu")

verification = dict(
    # measured on the 3 verification samples: logits moved by up to 0.26 (of ~7; all but one
    # element within atol=0.2 + rtol=0.1), 0.11 % of the mask's pixels changed class
    pair_outputs={"pytorch->onnx-int8": {"logits": dict(atol=0.3, rtol=0.1),
                                         "mask": dict(atol=0, rtol=0, max_mismatch_share=0.005)}},
    scenarios=dict(
        onnx=[
            _pytorch_cpu_vs_onnx_cpu,
            {**_pytorch_cpu_vs_onnx_cpu, "test_precision": "fp16"},
            {**_pytorch_cpu_vs_onnx_cpu, "test_precision": "int8"},
        ],
    ),
)

evaluation = dict(backends={"onnx-int8": dict(device="cpu")})  # added to the base's backends

quantization = dict(num_samples=16, method="minmax", seed=0)
