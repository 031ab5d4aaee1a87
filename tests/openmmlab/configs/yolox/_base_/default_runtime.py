# Test data: runtime and dataset keys in the shape of AWML's detection2d bases.
default_scope = "mmdet"
classes = ("unknown", "car", "truck", "bus", "trailer", "motorcycle", "pedestrian", "bicycle")
metainfo = dict(classes=classes)
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=3))
