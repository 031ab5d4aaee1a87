# The structure of AWML's CenterPoint-ShortRange pillar_016_convnext_secfpn config
# (BackwardPillarFeatureNet, ConvNeXt_PC with five stages and outputs 2/3/4, SECONDFPN
# 1/2/4, out_size_factor 4), shrunk to a +-12.8 m range, one block per stage and narrow
# channels so that it exports and verifies on a CPU in seconds. Written for these tests.
_base_ = ["./pillar_016_backward_second_small.py"]

out_size_factor = 4
point_cloud_range = [-12.8, -12.8, -3.0, 12.8, 12.8, 5.0]
voxel_size = [0.16, 0.16, 8.0]
grid_size = [160, 160, 1]

model = dict(
    pts_backbone=dict(
        _delete_=True,
        type="ConvNeXt_PC",
        in_channels=16,
        out_channels=[16, 32, 32, 32, 32],
        depths=[1, 1, 1, 1, 1],
        out_indices=[2, 3, 4],
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        gap_before_final_norm=False,
        with_cp=False,
    ),
    pts_neck=dict(in_channels=[32, 32, 32], out_channels=[16, 16, 16], upsample_strides=[1, 2, 4]),
    pts_bbox_head=dict(bbox_coder=dict(out_size_factor=out_size_factor)),
    test_cfg=dict(pts=dict(out_size_factor=out_size_factor)),
)
