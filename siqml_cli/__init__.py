"""siqml: symmetry-invariant quantum machine-learning force fields (Le et al., arXiv:2311.11362)."""

__version__ = "0.1.0"
