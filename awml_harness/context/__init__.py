"""The parts of one deploy config's run state, behind `session.ProjectContext`.

`data.ModelData` builds the model, graphs and samples; `artifacts.Artifacts` exports
and stores ONNX files and engines; `runners.RunnerPool` creates one runner per graph
and backend and runs samples through them; `passes.EvaluationPasses` runs every
backend over the evaluation samples. Each part holds the `ModelData` it works on (the
`ProjectContext` itself), so one model and one dataset serve them all.
"""
