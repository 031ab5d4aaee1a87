# YOLOX_opt_elan, full-size "s" configuration: widen 0.5, deepen 0.33, 960x960 input.
# No trained checkpoint is shipped for this size, so the model is a seeded random init
# (model_cfg.seed): it proves export (output (1, 18900, 13)) and PyTorch vs ONNX Runtime
# verification on CPU; evaluation is disabled because its metrics would be meaningless.
# Point checkpoint_path at an AWML checkpoint of the same size to verify real weights.

_base_ = "./deploy_config.py"

_input_hw = (960, 960)

checkpoint_path = None

model_cfg = dict(
    input_size=_input_hw,
    widen_factor=0.5,
    deepen_factor=0.33,
)

export = dict(work_dir="work_dirs/yolox_opt_elan_960")

# static batch 1, as AWML exports it (A = 18900 is fixed by the 960x960 input)
onnx_config = dict(save_file="yolox_opt_elan_960.onnx", dynamic_axes=dict(_delete_=True))

model_io = dict(input_shape=(3, *_input_hw), output_shape=(18900, 13), batch_size=1)

backend_config = dict(
    model_inputs=[
        dict(input_shapes=dict(images=dict(
            min_shape=(1, 3, *_input_hw), opt_shape=(1, 3, *_input_hw), max_shape=(1, 3, *_input_hw),
        ))),
    ],
)

verification = dict(num_verify_samples=1)

# full-size CPU latency says little and takes minutes: on a GPU machine set latency=True
evaluation = dict(enabled=False, latency=False)
