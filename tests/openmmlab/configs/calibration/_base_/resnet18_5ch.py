# Test data: a ResNet-18 / 5-channel calibration classifier in the structure of AWML's
# mmpretrain configs (written for these tests). Only the model and the test pipeline
# matter to the harness; the training keys are there because real configs have them.
model = dict(
    type="mmpretrain.ImageClassifier",
    backbone=dict(
        type="ResNet",
        depth=18,
        in_channels=5,
        num_stages=4,
        out_indices=(3,),
        frozen_stages=-1,
        style="pytorch",
    ),
    neck=dict(type="GlobalAveragePooling"),
    head=dict(
        type="LinearClsHead",
        num_classes=2,
        in_channels=512,
        loss=dict(type="CrossEntropyLoss", loss_weight=1.0),
        topk=(1,),
    ),
)
optim_wrapper = dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=0.0001))
train_cfg = dict(by_epoch=True, max_epochs=25, val_interval=1)
