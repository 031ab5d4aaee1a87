# The shipped CenterPoint deploy config; model_cfg names an OpenMMLab model config and
# adds harness-only settings (the TensorRT voxel profile the base config's
# backend_config states, and the metric definition the base config evaluates with).
_base_ = ["../../projects/CenterPoint/configs/deploy_config.py"]
model_cfg = dict(
    _delete_=True,
    openmmlab="configs/centerpoint/pillar_040_small.py",
    num_voxels_profile=[100, 3000, 12000],
    metric="t4",
    metric_distance_ranges=[[0.0, 50.0], [50.0, 90.0], [90.0, 121.0], [0.0, 121.0]],
)
