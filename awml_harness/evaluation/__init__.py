"""Task metrics per backend and the one gate that judges them.

`gate` holds metric directions and the tolerance check (serial runs, xdist shards
merged on the controller and `awml merge` all call it); `wire` moves predictions
between processes as builtins; `merge` replays shard predictions into one evaluator.
"""
