"""Stages: what `python run.py stage=...` runs, one module each (`estimate`, `transfer`, `analyze`), the
dispatch that validates the config and picks one (`dispatch`), the run-directory rules and Hydra resolvers
(`run_dirs`) and the end-of-sweep callback (`sweep_callback`). A new stage is a module here plus a line in
`dispatch.STAGES`.

The top of the import graph: may import everything below (data, models, estimators, analysis, edges)."""
