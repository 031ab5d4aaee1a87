# The shipped calibration deploy config, with model_cfg naming an OpenMMLab model config.
_base_ = ["../../projects/CalibrationStatusClassification/configs/deploy_config.py"]
model_cfg = "configs/calibration/resnet18_5ch_small.py"
