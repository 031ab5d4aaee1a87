# A small pillar CenterPoint (+-25.6 m, 0.4 m pillars, two narrow SECOND stages): the
# architecture of the shipped checkpoint fixtures/centerpoint/checkpoint.pth, in the
# structure of AWML's t4dataset CenterPoint configs.
_base_ = ["./_base_/pillar_base.py"]

class_names = ["car", "truck", "bus", "bicycle", "pedestrian"]
point_cloud_range = [-25.6, -25.6, -3.0, 25.6, 25.6, 3.0]
voxel_size = [0.4, 0.4, 6.0]
grid_size = [128, 128, 1]
out_size_factor = 2
point_load_dim = 5  # x, y, z, intensity, ring id
point_use_dim = 4  # x, y, z, time lag
lidar_sweep_dims = [0, 1, 2, 4]

model = dict(
    data_preprocessor=dict(
        voxel_layer=dict(
            max_num_points=20,
            voxel_size=voxel_size,
            point_cloud_range=point_cloud_range,
            max_voxels=(12000, 12000),
            deterministic=True,
        ),
    ),
    pts_voxel_encoder=dict(
        in_channels=point_use_dim, feat_channels=[32], point_cloud_range=point_cloud_range, voxel_size=voxel_size
    ),
    pts_middle_encoder=dict(in_channels=32, output_shape=(grid_size[1], grid_size[0])),
    pts_backbone=dict(in_channels=32, out_channels=[32, 64], layer_nums=[2, 2], layer_strides=[2, 2]),
    pts_neck=dict(in_channels=[32, 64], out_channels=[32, 32], upsample_strides=[1, 2]),
    pts_bbox_head=dict(
        in_channels=64,
        tasks=[dict(num_class=5, class_names=["car", "truck", "bus", "bicycle", "pedestrian"])],
        share_conv_channel=32,
        norm_cfg=dict(type="BN2d", eps=1e-3, momentum=0.01),  # as the shipped checkpoint was trained
        separate_head=dict(type="CustomSeparateHead", head_conv=16, final_kernel=3,
                           norm_cfg=dict(type="BN2d", eps=1e-3, momentum=0.01)),
        bbox_coder=dict(voxel_size=voxel_size, pc_range=point_cloud_range, out_size_factor=out_size_factor,
                        post_center_range=[-200.0, -200.0, -10.0, 200.0, 200.0, 10.0]),
    ),
    test_cfg=dict(
        pts=dict(
            grid_size=grid_size,
            out_size_factor=out_size_factor,
            pc_range=point_cloud_range,
            voxel_size=voxel_size,
            post_center_limit_range=[-200.0, -200.0, -10.0, 200.0, 200.0, 10.0],
            min_radius=[1.0],
            post_max_size=83,
        ),
    ),
)

test_pipeline = [
    dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=point_load_dim, use_dim=point_load_dim, backend_args=None),
    dict(type="LoadPointsFromMultiSweeps", sweeps_num=2, load_dim=point_load_dim, use_dim=lidar_sweep_dims,
         pad_empty_sweeps=True, remove_close=True, backend_args=None),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"]),
]
test_dataloader = dict(batch_size=2, dataset=dict(type="T4Dataset", test_mode=True, pipeline=test_pipeline))
