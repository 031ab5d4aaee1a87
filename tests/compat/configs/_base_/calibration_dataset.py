# Dataset-side base of the T4-like calibration config: what AWML keeps in
# autoware_ml/configs/.../dataset (custom_imports, file names, transform_config).
custom_imports = dict(
    imports=["awml_harness_test_missing.datasets", "awml_harness_test_marker"],
    allow_failed_imports=False,
)
info_test_file_name = "calibration_infos_eval.pkl"
transform_config = dict(crop_ratio=0.5, max_distortion=0.002, rgb_weight=0.4)
