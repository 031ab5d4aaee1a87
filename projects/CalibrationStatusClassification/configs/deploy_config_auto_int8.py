# CalibrationStatusClassification with precision_policy="auto_int8": the int8 logits held to
# atol=0.15 + rtol=0.02 (explicit `pytorch->onnx-int8` rule: taken as written, no int8
# floor). Plain int8 misses that (its logits move by up to 0.36 of ~6, measured); the search
# leaves the few nodes unquantized that it needs to pass both that tolerance and the
# onnx-int8 metric gate on the 3 verification + 32 calibration samples (docs/int8.md). The
# choice is cached in the artifact store, so a warm run reuses it.

_base_ = ["./deploy_config.py"]

backend_config = dict(common_config=dict(precision_policy="auto_int8"))

verification = dict(
    pair_outputs={"pytorch->onnx-int8": {"output": dict(atol=0.15, rtol=0.02)}},
)
