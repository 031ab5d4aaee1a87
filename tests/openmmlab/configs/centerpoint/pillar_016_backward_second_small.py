# The structure of AWML's CenterPoint-ShortRange pillar_016_second_secfpn config
# (BackwardPillarFeatureNet with two PFN layers, SECOND strides 1/2/2, SECONDFPN 1/2/4,
# out_size_factor 1), shrunk to a +-12.8 m range and narrow channels so that it exports
# and verifies on a CPU in seconds. Written for these tests.
_base_ = ["./_base_/pillar_base.py"]

point_cloud_range = [-12.8, -12.8, -3.0, 12.8, 12.8, 5.0]
voxel_size = [0.16, 0.16, 8.0]
grid_size = [160, 160, 1]
out_size_factor = 1

model = dict(
    data_preprocessor=dict(
        voxel_layer=dict(max_num_points=32, voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                         max_voxels=(32000, 6000), deterministic=True),
    ),
    pts_voxel_encoder=dict(
        type="BackwardPillarFeatureNet", in_channels=4, feat_channels=[16, 16], point_cloud_range=point_cloud_range,
        voxel_size=voxel_size,
    ),
    pts_middle_encoder=dict(in_channels=16, output_shape=(grid_size[0], grid_size[1])),
    pts_backbone=dict(in_channels=16, out_channels=[16, 32, 64], layer_nums=[1, 1, 1], layer_strides=[1, 2, 2]),
    pts_neck=dict(in_channels=[16, 32, 64], out_channels=[16, 16, 16], upsample_strides=[1, 2, 4]),
    pts_bbox_head=dict(
        in_channels=48,
        tasks=[dict(num_class=5, class_names=["car", "truck", "bus", "bicycle", "pedestrian"])],
        share_conv_channel=16,
        separate_head=dict(type="CustomSeparateHead", head_conv=16, final_kernel=1),
        bbox_coder=dict(voxel_size=voxel_size, pc_range=point_cloud_range, out_size_factor=out_size_factor,
                        post_center_range=[-200.0, -200.0, -10.0, 200.0, 200.0, 10.0]),
    ),
    test_cfg=dict(
        pts=dict(grid_size=grid_size, out_size_factor=out_size_factor, pc_range=point_cloud_range,
                 voxel_size=voxel_size, post_center_limit_range=[-200.0, -200.0, -10.0, 200.0, 200.0, 10.0]),
    ),
)

test_pipeline = [
    dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=5, use_dim=5, backend_args=None),
    dict(type="LoadPointsFromMultiSweeps", sweeps_num=1, load_dim=5, use_dim=[0, 1, 2, 4], pad_empty_sweeps=True,
         remove_close=True, backend_args=None),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points"]),
]
