# A narrow ResNet-18 (base_channels=16): the architecture of the shipped small
# checkpoint fixtures/calibration/checkpoint.pth.
_base_ = ["./_base_/resnet18_5ch.py"]

data_root = "fixtures/calibration/data"
data_preprocessor = dict()

model = dict(
    backbone=dict(base_channels=16, stem_channels=16),
    head=dict(in_channels=128),
)

test_pipeline = [
    dict(
        type="CalibrationClassificationTransform",
        transform_config=dict(crop_ratio=0.6, max_distortion=0.001, depth_scale=80.0, radius=0, rgb_weight=0.3),
        mode="test",
        undistort=True,
        enable_augmentation=False,
        data_root=data_root,
        projection_vis_dir=None,
        results_vis_dir=None,
    ),
    dict(type="PackInputs", input_key="fused_img", meta_keys=["img_path", "sample_idx"]),
]
test_dataloader = dict(batch_size=8, dataset=dict(type="T4CalibrationClassificationDataset", pipeline=test_pipeline))
