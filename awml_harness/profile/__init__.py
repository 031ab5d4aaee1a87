"""Per-node profiles (`--awml-profile`): where a graph's time goes, on every backend.

Each backend gets a profiled run of its own after warm-up, never inside test_latency's
timed rounds, and what it timed is attributed to the nodes of the fp32 ONNX graph, so
one table lines the backends up node by node:

- nodes.py: ONNX graphs as the attribution sees them; kernel names -> ONNX nodes through
  the optimizers' renames and fusions; a variant graph's nodes (fp16 Casts, int8 Q/DQ)
  onto the fp32 graph's; which kernels are integer kernels.
- rows.py: one backend's per-round times -> one cell per fp32 ONNX node (time, share,
  precision, fused into what).
- onnxruntime.py (the profiler's JSON), torch.py (module calls timed one by one, mapped
  to ONNX nodes through the exporter's name scopes), tensorrt.py (IProfiler + the engine
  inspector): what each backend timed.
- run.py: the profiled run of one backend spec of a config (the suite test calls it).
- join.py: the records of every backend joined by ONNX node (the metrics JSON's
  `projects.<id>.profile`); trace.py: a Chrome-trace / Perfetto file per backend.
"""
