# Test data: a reduced YOLOX opt-ELAN in the structure of AWML's
# yolox-s-opt-elan_960x960_300e_t4dataset.py (written for these tests). Same
# architecture as the shipped small checkpoint fixtures/yolox/checkpoint.pth.
_base_ = ["./_base_/default_runtime.py"]

IMG_SCALE = (192, 192)
activation = "ReLU6"

model = dict(
    type="YOLOX",
    data_preprocessor=dict(
        type="DetDataPreprocessor",
        pad_size_divisor=32,
        batch_augments=[dict(type="BatchSyncRandomResize", random_size_range=(160, 224), size_divisor=32, interval=10)],
    ),
    backbone=dict(
        type="ELANDarknet", deepen_factor=0.33, widen_factor=0.25, out_indices=(2, 3, 4), act_cfg=dict(type=activation)
    ),
    neck=dict(
        type="YOLOXPAFPN_ELAN", in_channels=[32, 64, 128], out_channels=32, num_elan_blocks=1, act_cfg=dict(type=activation)
    ),
    bbox_head=dict(
        type="YOLOXHead",
        num_classes=8,
        in_channels=32,
        feat_channels=32,
        act_cfg=dict(type=activation),
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, reduction="sum", loss_weight=1.0),
    ),
    train_cfg=dict(assigner=dict(type="SimOTAAssigner", center_radius=2.5)),
    # max_num: the cap of mmcv's batched_nms (mmdet's YOLOXHead has no other); = the native 300
    test_cfg=dict(score_thr=0.01, nms=dict(type="nms", iou_threshold=0.65, max_num=300)),
)

test_pipeline = [
    dict(type="LoadImageFromFile", backend_args=None),
    dict(type="Resize", scale=IMG_SCALE, keep_ratio=True),
    dict(type="Pad", pad_to_square=True, pad_val=dict(img=(114.0, 114.0, 114.0))),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")),
]
test_dataloader = dict(batch_size=4, dataset=dict(type="T4Dataset", test_mode=True, pipeline=test_pipeline))
