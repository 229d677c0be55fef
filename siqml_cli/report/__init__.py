"""Reports for trained force fields: MSE tables in the paper's format and diagnostic figures."""
from siqml_cli.report.figures import (
    force_along_bond,
    plot_energy_parity,
    plot_force_parity,
    plot_lih_curve,
    plot_loss_curves,
)
from siqml_cli.report.tables import mse_table, reference_variances, relative_errors, to_markdown, write_mse_tables

__all__ = ["mse_table", "write_mse_tables", "relative_errors", "reference_variances", "to_markdown",
           "plot_loss_curves", "plot_energy_parity", "plot_force_parity", "plot_lih_curve", "force_along_bond"]
