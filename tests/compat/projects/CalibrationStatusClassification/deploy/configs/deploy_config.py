# The seed's deploy-config format (AWML's deployment branch), unchanged in structure:
# no `project` (inferred from this file's projects/<Name>/ folder or the model config's),
# codebase_config, device aliases, seed-only keys in onnx_config / backend_config /
# evaluation / model_io. The model config comes from --model-cfg, as the seed's second
# positional argument. Paths are relative to the rootdir (the harness repository).
codebase_config = dict(type="mmpretrain", task="Classification", model_type="end2end")
task_type = "classification"
checkpoint_path = "fixtures/calibration/checkpoint.pth"

devices = dict(cpu="cpu", cuda="cuda:0")

export = dict(mode="both", work_dir="work_dirs/awml_seed_calibration", onnx_path=None)

runtime_io = dict(info_file="fixtures/calibration/data/calibration_infos_eval.pkl", sample_idx=0)

model_io = dict(
    input_name="input",
    input_shape=(5, 128, 192),
    input_dtype="float32",
    output_name="output",
    batch_size=None,
    dynamic_axes={"input": {0: "batch_size"}, "output": {0: "batch_size"}},
)

onnx_config = dict(
    type="onnx",
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=16,
    do_constant_folding=True,
    save_file="end2end.onnx",
    simplify=False,
)

backend_config = dict(
    type="tensorrt",
    common_config=dict(max_workspace_size=1 << 30, precision_policy="auto"),
    model_inputs=[dict(input_shapes=dict(input=dict(
        min_shape=[1, 5, 128, 192], opt_shape=[1, 5, 128, 192], max_shape=[2, 5, 128, 192])))],
)

evaluation = dict(
    enabled=True,
    num_samples=4,
    verbose=True,
    backends=dict(
        pytorch=dict(enabled=True, device=devices["cpu"]),
        onnx=dict(enabled=True, device=devices["cpu"], model_dir="work_dirs/elsewhere/onnx/"),
        tensorrt=dict(enabled=True, device=devices["cuda"], engine_dir=None),
    ),
)

verification = dict(
    enabled=True,
    tolerance=1e-1,
    num_verify_samples=2,
    devices=devices,
    scenarios=dict(
        both=[
            dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnx", test_device="cpu"),
            dict(ref_backend="onnx", ref_device="cuda", test_backend="tensorrt", test_device="cuda"),
        ],
        onnx=[dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnx", test_device="cpu")],
        trt=[dict(ref_backend="onnx", ref_device="cuda", test_backend="tensorrt", test_device="cuda")],
        none=[],
    ),
)
