"""Training: the compiled Adam step, the loop with checkpoints, and one whole training run."""
