# The structure of AWML's current T4 calibration config (transform arguments max_depth,
# dilation_size, miscalibration_probability as top-level variables; custom_imports from
# the dataset base; training sections), at the width of the shipped small checkpoint.
_base_ = [
    "../../../configs/_base_/resnet18.py",
    "../../../configs/_base_/calibration_dataset.py",
]

data_root = "fixtures/calibration/data"
max_depth = 96.0
dilation_size = 1
miscalibration_probability = 0.5
batch_size = 4

data_preprocessor = dict()

model = dict(
    type="mmpretrain.ImageClassifier",
    backbone=dict(in_channels=5, base_channels=16, stem_channels=16, frozen_stages=-1,
                  norm_cfg=dict(type="BN", requires_grad=True)),
    head=dict(num_classes=2, in_channels=128, topk=(1,),
              loss=dict(_delete_=True, type="LabelSmoothLoss", label_smooth_val=0.1),
              init_cfg=dict(type="Normal", layer="Linear", std=0.01)),
)

optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=0.001))
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)

test_pipeline = [
    dict(
        type="CalibrationClassificationTransform",
        mode="test",
        max_depth=max_depth,
        dilation_size=dilation_size,
        undistort=True,
        miscalibration_probability=miscalibration_probability,
        enable_augmentation=False,
        transform_config=_base_.transform_config,
        data_root=data_root,
        projection_vis_dir=None,
        results_vis_dir=None,
        binary_save_dir=None,
    ),
    dict(type="PackInputs", input_key="fused_img", meta_keys=["img_path", "sample_idx"]),
]
test_dataloader = dict(
    batch_size=batch_size,
    dataset=dict(type="T4CalibrationClassificationDataset",
                 ann_file=data_root + "/" + _base_.info_test_file_name, pipeline=test_pipeline),
)
