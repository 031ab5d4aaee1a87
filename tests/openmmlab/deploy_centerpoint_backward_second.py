# Export and verification of an AWML CenterPoint-ShortRange structure (seeded weights,
# a seeded synthetic cloud): tests/openmmlab/configs/centerpoint/pillar_016_backward_second_small.py.
_base_ = ["../../projects/CenterPoint/configs/deploy_config.py"]
checkpoint_path = None
model_cfg = dict(_delete_=True, openmmlab="configs/centerpoint/pillar_016_backward_second_small.py",
                 num_voxels_profile=[100, 2000, 6000], synthetic_points=20000)
export = dict(work_dir="work_dirs/centerpoint_backward_second")
runtime_io = dict(_delete_=True, sample_idx=0)
backend_config = dict(model_inputs=[])
verification = dict(
    num_verify_samples=1,
    scenarios=dict(onnx=[dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnx", test_device="cpu")]),
)
evaluation = dict(enabled=False, latency=False)
