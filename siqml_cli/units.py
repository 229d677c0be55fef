"""Unit constants (CODATA 2018), defined once so every data set converts the same way (docs/data.md)."""

HARTREE_EV = 27.211386245988
BOHR_ANGSTROM = 0.529177210903
HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM = HARTREE_EV / BOHR_ANGSTROM
