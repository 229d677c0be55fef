"""Hydra's config tree, installed as the package `siqml_cli.configs` (found through `pkg://siqml_cli.configs`)."""
