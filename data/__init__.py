"""The shipped reference data sets, installed as the package `siqml_cli.shipped` so that a relative path
such as `data/h2o.h5` in a config resolves in any working directory (`siqml_cli.paths.resolve_input`)."""
