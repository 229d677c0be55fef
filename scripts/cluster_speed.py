"""How the cost of a water-cluster MD step grows with the cluster: steps per second for 6, 20 and 64 molecules.

The clusters: the shipped hexamer ring, and 20 and 64 molecules packed at liquid density (one molecule per
cube of side 3.1 Å, a cube of lattice sites filled from the centre out, each molecule a monomer drawn like
the H2O data set, randomly oriented, its O jiggled by up to 0.2 Å). The models: the given monomer and pair
runs, or, without them, D = 4, B = 1 H2O and water-dimer circuits with random weights (the cost does not depend
on the weights). Each size: one NVE step to compile, then `--steps` velocity-Verlet steps at 0.25 fs timed;
the table gives steps per second, the pairs within the cutoff and the time per pair.

    python scripts/cluster_speed.py [--monomer RUN --pair RUN] [--steps 20] [--out results/cluster_speed.csv]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms, units
from ase.io import read
from ase.md.verlet import VelocityVerlet
from scipy.spatial.transform import Rotation

from siqml_cli.ase import WaterClusterCalculator
from siqml_cli.cluster import ClusterForceField, Switch, pairs_within
from siqml_cli.config import parse_domain_check
from siqml_cli.data.generate import sample_h2o
from siqml_cli.precision import double_precision_scope

SPACING = 3.1  # Å: one molecule per 29.8 Å^3, liquid water's density


def packed_waters(n: int, seed: int = 0) -> Atoms:
    """n water molecules on the n lattice sites nearest the centre of a cubic lattice of side SPACING."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n ** (1 / 3))) + 2
    sites = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3) * SPACING
    sites -= sites.mean(axis=0)
    sites = sites[np.argsort(np.linalg.norm(sites, axis=1), kind="stable")[:n]]
    molecules = []
    for site in sites:
        monomer = sample_h2o(rng, (0.95, 0.99), (102.0, 107.0))
        monomer = Rotation.random(random_state=rng).apply(monomer - monomer[0])
        molecules.append(monomer + site + rng.uniform(-0.2, 0.2, 3))
    return Atoms("OH2" * n, positions=np.concatenate(molecules))


class RandomWeightCalculator(WaterClusterCalculator):
    """The calculator on D = 4, B = 1 models (the dimer circuit with its fixed observable) with random weights, for
    timing without trained runs."""

    def __init__(self):
        from ase.calculators.calculator import Calculator

        from siqml_cli.forcefield import ForceField, LabelScaler
        from siqml_cli.models import build_model

        Calculator.__init__(self)
        models = {}
        for name, scaler in (("h2o", LabelScaler(-2076.0, -2074.0, -0.8, 0.8)),
                             ("water_dimer", LabelScaler(-0.3, 0.1, -0.8, 0.8))):
            spec = build_model(name, "full", 4, 1)
            models[name] = ForceField(spec, spec.random_weights(0), scaler)
        self.forcefield = self.model = ClusterForceField(models["h2o"], models["water_dimer"], Switch())
        self.domain_check = parse_domain_check("warn")
        self.run = self.monomer_run = Path("random weights")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monomer")
    parser.add_argument("--pair")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default="results/cluster_speed.csv")
    args = parser.parse_args()
    clusters = {6: read("data/water_hexamer.xyz"), 20: packed_waters(20), 64: packed_waters(64)}
    rows = []
    with double_precision_scope():
        for n, atoms in clusters.items():
            calc = (WaterClusterCalculator(args.monomer, args.pair) if args.monomer else RandomWeightCalculator())
            atoms = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions())
            atoms.calc = calc
            dyn = VelocityVerlet(atoms, timestep=0.25 * units.fs)
            start = time.perf_counter()
            dyn.run(1)
            compile_s = time.perf_counter() - start
            start = time.perf_counter()
            dyn.run(args.steps)
            seconds = (time.perf_counter() - start) / args.steps
            pairs = len(pairs_within(atoms.get_positions()[::3], calc.forcefield.switch.r_off))
            rows.append({"molecules": n, "pairs within cutoff": pairs, "steps per s": 1 / seconds,
                         "ms per step": 1000 * seconds, "ms per pair": 1000 * seconds / max(pairs, 1),
                         "first step (compile) s": compile_s})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
