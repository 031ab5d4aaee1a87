# The shipped YOLOX deploy config, with model_cfg naming an OpenMMLab model config.
_base_ = ["../../projects/YOLOX_opt_elan/configs/deploy_config.py"]
model_cfg = "configs/yolox/yolox_opt_elan_small.py"
