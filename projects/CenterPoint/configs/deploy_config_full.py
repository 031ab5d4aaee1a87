# CenterPoint, full size like the public T4 setup: +-122.4 m, 0.24 m pillars
# (1020 x 1020 grid), 32 points per voxel, up to 96000 voxels, 5 point features
# (x, y, z, intensity, time lag) -> C = 11 derived by the project, SECOND 64/128/256
# with strides 1/2/2 and SECONDFPN 3 x 128 with upsampling 0.5/1/2, so the head runs at
# 510 x 510 (out_size_factor 2; 1020 / 8 is not an integer, so the 2/2/2 strides of
# the 760-grid configs cannot be used here).
#
# No checkpoint: a seeded random initialization (the project warns), evaluation off.
# No dataset either: without runtime_io.info_file the project traces and verifies a
# seeded synthetic point cloud over the whole range (200k points in small patches,
# about 35k voxels, near the profile's opt of 32000).
#
#   pytest suites/ --deploy-cfg projects/CenterPoint/configs/deploy_config_full.py -k "centerpoint and export"

_base_ = "./deploy_config.py"

_range = [-122.4, -122.4, -3.0, 122.4, 122.4, 5.0]
_voxel = [0.24, 0.24, 8.0]
_feats = 5
_max_points = 32
_max_voxels = 96000
_num_voxels = [1000, 32000, _max_voxels]
_pillar_channels = 32

checkpoint_path = None

model_cfg = dict(
    point_cloud_range=_range,
    voxel_size=_voxel,
    num_point_features=_feats,
    use_dim=[0, 1, 2, 3, 4],
    max_points_per_voxel=_max_points,
    max_voxels=_max_voxels,
    num_voxels_profile=_num_voxels,
    pfn_channels=[_pillar_channels],
    backbone_layer_nums=[3, 5, 5],
    backbone_out_channels=[64, 128, 256],
    backbone_strides=[1, 2, 2],
    neck_out_channels=[128, 128, 128],
    neck_upsample_strides=[0.5, 1, 2],
    share_conv_channel=64,
    head_conv=64,
    head_norm_eps=1e-5,  # mmdet3d's BN2d default, as in AWML's configs
    separate_head_norm_eps=1e-5,
    min_radius=[1.0],  # circle NMS across the classes: squared BEV distance, m^2
    synthetic_samples=1,
    synthetic_points=200000,
    rot_y_axis_reference=True,  # Autoware's head layout: dim (w, l, h), rot (-cos, -sin)
)

# the Autoware package (autoware_lidar_centerpoint's ml_package.param.yaml + class remapper)
package = dict(enabled=True)

export = dict(work_dir="work_dirs/centerpoint_full")

runtime_io = dict(_delete_=True, sample_idx=0)

# TensorRT profiles: none written here, so the engine uses the ones the project derives
# from model_cfg (num_voxels_profile, C = num_point_features + 6, the 1020x1020 grid);
# the base config's explicit list (for the small grid) is replaced by an empty one
backend_config = dict(model_inputs=[])

verification = dict(
    num_verify_samples=1,
    # random weights through 20+ conv layers: a looser absolute tolerance on the head maps
    default=dict(atol=1e-3, rtol=1e-3),
)

# full-size CPU latency says little and takes minutes: on a GPU machine set latency=True
evaluation = dict(enabled=False, latency=False)
