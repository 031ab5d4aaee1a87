# The seed's CenterPoint deploy config (AWML's deployment branch), unchanged in structure:
# no `project`, device aliases, a multi-file ONNX, and a `model_io` written for the PyTorch
# model (the voxelizer's voxels / num_points / coors in, the head's tensors out, `hm` for
# the heatmap) rather than for the two exported graphs. The model config comes from
# --model-cfg. Paths are relative to the rootdir (the harness repository); the numbers
# fit the small model of tests/openmmlab/configs/centerpoint/pillar_040_small.py and the
# shipped checkpoint.
task_type = "detection3d"
checkpoint_path = "fixtures/centerpoint/checkpoint.pth"

devices = dict(cpu="cpu", cuda="cuda:0")

export = dict(mode="both", work_dir="work_dirs/awml_seed_centerpoint", onnx_path=None)

runtime_io = dict(info_file="fixtures/centerpoint/infos_eval.pkl", sample_idx=1)

model_io = dict(
    input_name="voxels",
    input_shape=(20, 4),
    input_dtype="float32",
    additional_inputs=[
        dict(name="num_points", shape=(-1,), dtype="int32"),
        dict(name="coors", shape=(-1, 4), dtype="int32"),
    ],
    output_name="reg",
    additional_outputs=["height", "dim", "rot", "vel", "hm"],
    batch_size=None,
    dynamic_axes={
        "voxels": {0: "num_voxels"},
        "num_points": {0: "num_voxels"},
        "coors": {0: "num_voxels"},
    },
)

onnx_config = dict(
    opset_version=16,
    do_constant_folding=True,
    save_file="centerpoint.onnx",
    export_params=True,
    keep_initializers_as_inputs=False,
    simplify=False,
    multi_file=True,
)

backend_config = dict(
    common_config=dict(precision_policy="auto", max_workspace_size=1 << 30),
    model_inputs=[
        dict(
            input_shapes=dict(
                input_features=dict(min_shape=[1, 20, 10], opt_shape=[4000, 20, 10], max_shape=[12000, 20, 10]),
                spatial_features=dict(min_shape=[1, 32, 128, 128], opt_shape=[1, 32, 128, 128],
                                      max_shape=[1, 32, 128, 128]),
            )
        )
    ],
)

evaluation = dict(
    enabled=True,
    num_samples=1,
    verbose=True,
    backends=dict(
        pytorch=dict(enabled=True, device=devices["cpu"]),
        onnx=dict(enabled=True, device=devices["cpu"], model_dir="work_dirs/awml_seed_centerpoint/onnx/"),
        tensorrt=dict(enabled=True, device=devices["cuda"], engine_dir="work_dirs/awml_seed_centerpoint/trt/"),
    ),
)

verification = dict(
    enabled=True,
    tolerance=1e-2,
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
