"""Water clusters of any size from two trained models: the many-body expansion to second order.

    E(X) = sum_i E1(x_i) + sum_{i<j} s(R_ij) E2(x_i, x_j)

x_i are the atoms O, H, H of molecule i (the cluster's atoms in that order, molecule after molecule),
E1 the monomer model (trained on monomer energies), E2 the pair model (the water dimer's circuit trained
on two-body energies E(ij) - E(i) - E(j), not on total dimer energies), R_ij the O-O distance and s the
switch of `Switch`: 1 up to `r_on`, 0 from `r_off` on, a quintic polynomial in between whose first and
second derivatives vanish at both ends, so the energy, the forces and their derivatives stay continuous
when a pair crosses the cutoff.

Why the cluster energy is exactly invariant: E1 is invariant under rotations, reflections, translations
and the exchange of a molecule's two H (the monomer siVQLM); E2 under the same motions of the pair, the H
exchange inside each molecule and the exchange of the two molecules (the dimer siVQLM); R_ij is a
distance. A rotation, reflection or translation of the cluster moves every monomer and pair rigidly;
exchanging the H of molecule i permutes atoms inside x_i; permuting the molecules permutes the terms of
both sums (a pair's two molecules possibly swapped). So both models must keep their symmetry exactly:
the symmetry-breaking layer (and the generic VQLM) are refused.

The pairs within `r_off` come from ASE's neighbour list on the O atoms, one batch per call; forces are
minus the gradient of the whole expression (the models, the switch and the O-O distances) by JAX's
reverse mode, in one pass for every configuration of a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from siqml_cli.data.clusters import TWO_BODY, WATER, molecule_atoms
from siqml_cli.errors import SiqmlError
from siqml_cli.forcefield import ForceField
from siqml_cli.models import ModelSpec
from siqml_cli.precision import double_precision
from siqml_cli.prediction import Prediction
from siqml_cli.simulate.statevector import in_micro_batches

PAIR = WATER + WATER
#: Å: an H farther than this from its own O means the atoms are not whole molecules in O, H, H order
MAX_OH = 1.6
#: the pairs of a batch are padded to a multiple of this, so that the compiled function is reused
PAIR_BUCKET = 16
#: the atoms of a padding pair: two distinct atoms as its "oxygens" keep every derivative finite (a zero
#: O-O distance would give NaN, and NaN times the zero weight of a dropped pair is still NaN)
PADDING = np.array([0, 1, 2, 1, 2, 0])


def check_molecules(positions: np.ndarray) -> None:
    """Refuse configurations (N, 3n, 3) in which an H is not bonded to the O listed before it."""
    x = np.asarray(positions, dtype=float).reshape(len(positions), -1, 3, 3)
    oh = np.linalg.norm(x[:, :, 1:] - x[:, :, :1], axis=-1)  # (N, n, 2)
    bad = np.argwhere(~(oh <= MAX_OH))
    if len(bad):
        config, molecule, h = bad[0]
        raise SiqmlError(f"configuration {config}: H {3 * molecule + h + 1} is {oh[config, molecule, h]:.2f} Å from "
                         f"its O (atom {3 * molecule}), more than {MAX_OH} Å: the atoms are not whole water molecules "
                         "in O, H, H order; list each molecule as its O and then its two H")


def cluster_broken(positions: np.ndarray, cutoff: float) -> str | None:
    """Why a cluster configuration (3n, 3) is no longer one, or None: an O-H bond outside [0.5, MAX_OH] Å (a
    molecule broke), or a molecule with no other O within `cutoff` (it left the cluster)."""
    x = np.asarray(positions, dtype=float).reshape(-1, 3, 3)
    oh = np.linalg.norm(x[:, 1:] - x[:, :1], axis=-1)
    if oh.min() < 0.5 or oh.max() > MAX_OH:
        molecule = int(np.argmax(np.maximum(0.5 - oh, oh - MAX_OH).max(axis=1)))
        return f"molecule {molecule} broke (O-H {oh[molecule].min():.2f}-{oh[molecule].max():.2f} Å)"
    if len(x) > 1:
        nearest = _nearest_oo(x)
        if nearest.max() > cutoff:
            molecule = int(np.argmax(nearest))
            return (f"molecule {molecule} left the cluster (its nearest O {nearest[molecule]:.2f} Å away, beyond the "
                    f"cutoff {cutoff} Å)")
    return None


def _nearest_oo(molecules: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(molecules[:, None, 0] - molecules[None, :, 0], axis=-1)
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def cluster_geometry_range(frames: list[np.ndarray]) -> dict:
    """What a trajectory's saved frames say about the cluster holding together: the range of its O-H bonds and the
    largest distance of any molecule to its nearest O (Å)."""
    x = np.stack([np.asarray(f, dtype=float).reshape(-1, 3, 3) for f in frames])
    oh = np.linalg.norm(x[:, :, 1:] - x[:, :, :1], axis=-1)
    nearest = max(float(_nearest_oo(m).max()) for m in x) if x.shape[1] > 1 else None
    return {"oh_bond_min_A": float(oh.min()), "oh_bond_max_A": float(oh.max()), "largest_nearest_oo_A": nearest}


@dataclass(frozen=True)
class Switch:
    """s(R) = 1 for R <= r_on, 0 for R >= r_off, 1 - 10 t^3 + 15 t^4 - 6 t^5 with t = (R - r_on) / (r_off - r_on)
    between (C2: the forces and their derivatives are continuous)."""

    r_on: float = 6.0
    r_off: float = 7.0

    def __post_init__(self):
        if not 0 < self.r_on < self.r_off:
            raise SiqmlError(f"the switch needs 0 < r_on < r_off (given r_on={self.r_on}, r_off={self.r_off} Å); "
                             "r_off is the cutoff and r_off - r_on the width over which pairs are switched off")

    def __call__(self, r):
        t = jnp.clip((r - self.r_on) / (self.r_off - self.r_on), 0.0, 1.0)
        return 1.0 - t ** 3 * (10.0 - 15.0 * t + 6.0 * t ** 2)


def pairs_within(oxygens: np.ndarray, cutoff: float) -> np.ndarray:
    """(P, 2) molecule indices i < j whose O-O distance is below `cutoff` (ASE's neighbour list)."""
    from ase.neighborlist import primitive_neighbor_list

    i, j = primitive_neighbor_list("ij", [False] * 3, np.zeros((3, 3)), np.asarray(oxygens, dtype=float),
                                   float(cutoff))
    keep = i < j
    return np.stack([i[keep], j[keep]], axis=1).reshape(-1, 2)


def _check_model(forcefield: ForceField, role: str, species: tuple[str, ...]) -> None:
    spec = forcefield.spec
    if tuple(spec.species) != species:
        data = "+molecule=h2o" if role == "monomer" else "+molecule=water_pair"
        raise SiqmlError(f"the {role} model is of {'-'.join(spec.species)}, but a water cluster needs a {role} model "
                         f"of {'-'.join(species)}; give a run trained on {data}")
    if not isinstance(spec, ModelSpec) or spec.symmetry_breaking:
        kind = "the generic VQLM" if not isinstance(spec, ModelSpec) else "the symmetry-breaking layer"
        raise SiqmlError(f"the {role} model has {kind}, which would break the cluster's invariance; train it with "
                         "symmetry=full")


def pair_parts(molecules: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """One configuration's pairs (P, 2) of its molecules (n, 3, 3) as (P, 6, 3), and their names."""
    parts = np.concatenate([molecules[pairs[:, 0]], molecules[pairs[:, 1]]], axis=1)
    return parts, [f"molecules {i} and {j}" for i, j in pairs]


class ClusterDomain:
    """Where a cluster configuration leaves what its two models saw: a monomer outside the monomer model's
    domain, or a pair within the cutoff outside the pair model's (two molecules closer than any pair it was
    trained on, say). Duck-types `siqml_cli.domain.Domain.check`."""

    def __init__(self, cluster: ClusterForceField):
        self.cluster = cluster

    def check(self, positions: np.ndarray, pairs: list[np.ndarray] | None = None) -> tuple[np.ndarray, list[str]]:
        """(outside (N,) bool, reasons (N,) str naming the molecules and the distance); `pairs` are the configurations'
        pairs within the cutoff when the caller has them (`ClusterForceField.pair_lists`)."""
        cluster = self.cluster
        x = cluster.molecules(positions)
        pairs = cluster.pair_lists(x) if pairs is None else pairs
        outside, reasons = np.zeros(len(x), bool), [""] * len(x)
        for k, config in enumerate(x):
            for role, model, parts, names in (
                    ("monomer", cluster.monomer, config, [f"molecule {i}" for i in range(len(config))]),
                    ("pair", cluster.pair, *pair_parts(config, pairs[k]))):
                if model.domain is None or not len(parts):
                    continue
                out, why = model.domain.check(parts.reshape(len(parts), -1, 3))
                if out.any():
                    first = int(np.argmax(out))
                    outside[k], reasons[k] = True, f"{names[first]}: {why[first]} of the {role} model"
                    break
        return outside, reasons


class ClusterForceField:
    """Energies and forces of water clusters from a monomer and a pair `ForceField` (module docstring)."""

    def __init__(self, monomer: ForceField, pair: ForceField, switch: Switch = Switch(), max_pairs: int = 1024):
        _check_model(monomer, "monomer", WATER)
        _check_model(pair, "pair", PAIR)
        self.monomer, self.pair, self.switch = monomer, pair, switch
        self.max_pairs = max_pairs
        self._energies = jax.jit(self._energies_and_forces, static_argnums=(3,))

    @property
    def domain(self) -> ClusterDomain | None:
        """The domain check of the two models (None when neither records its domain)."""
        return ClusterDomain(self) if self.monomer.domain is not None or self.pair.domain is not None else None

    @staticmethod
    def molecules(positions: np.ndarray) -> np.ndarray:
        """(N, n, 3, 3): each configuration's molecules, their atoms O, H, H."""
        x = np.asarray(positions, dtype=float)
        if x.ndim == 2:
            x = x[None]
        return x.reshape(len(x), -1, 3, 3)

    def pair_lists(self, molecules: np.ndarray) -> list[np.ndarray]:
        """Each configuration's pairs (P, 2) within the cutoff, of molecules (N, n, 3, 3)."""
        return [pairs_within(config[:, 0], self.switch.r_off) for config in molecules]

    def _energies_and_forces(self, x, pair_atoms, pair_config, n_configs):
        """x (N, 3n, 3); pair_atoms (P, 6) flat atom indices into x.reshape(-1, 3); pair_config (P,) the
        configuration of each pair, n_configs for the padding pairs (their energy is dropped)."""

        def energies(x):
            monomer, pair = self.monomer, self.pair
            molecules = x.reshape(-1, 3, 3)
            f1 = in_micro_batches(partial(monomer.sim.expectation_at_once, monomer.weights), molecules,
                                  monomer.sim.micro_batch(len(molecules), force_loss=True))
            e1 = monomer.scaler.to_energy(f1).reshape(n_configs, -1).sum(axis=1)
            parts = x.reshape(-1, 3)[pair_atoms]  # (P, 6, 3)
            f2 = in_micro_batches(partial(pair.sim.expectation_at_once, pair.weights), parts,
                                  pair.sim.micro_batch(len(parts), force_loss=True))
            r_oo = jnp.linalg.norm(parts[:, 3] - parts[:, 0], axis=-1)
            e2 = pair.scaler.to_energy(f2) * self.switch(r_oo)
            return e1 + jax.ops.segment_sum(e2, pair_config, num_segments=n_configs + 1)[:n_configs]

        e, vjp = jax.vjp(energies, x)
        return e, -vjp(jnp.ones_like(e))[0]

    @staticmethod
    def _pair_index(n_atoms: int, pairs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Flat atom indices (P, 6) of the pairs of configurations of `n_atoms` atoms, and each pair's configuration;
        padded to a multiple of PAIR_BUCKET with `PADDING` pairs of configuration N (dropped)."""
        atoms = [np.zeros((0, 6), int)] + [k * n_atoms + molecule_atoms(p.ravel()).reshape(-1, 6)
                                           for k, p in enumerate(pairs)]
        owner = [np.zeros(0, int)] + [np.full(len(p), k) for k, p in enumerate(pairs)]
        atoms, owner = np.concatenate(atoms), np.concatenate(owner)
        pad = PAIR_BUCKET - len(atoms) % PAIR_BUCKET
        return (np.concatenate([atoms, np.tile(PADDING, (pad, 1))]),
                np.concatenate([owner, np.full(pad, len(pairs))]))

    @double_precision
    def predict(self, positions: np.ndarray) -> Prediction:
        """Energies (N,) in eV and forces (N, 3n, 3) in eV/Å of clusters of n water molecules, flagged where
        they leave what the models saw (`ClusterDomain`)."""
        molecules = self.molecules(positions)
        check_molecules(molecules)
        n = molecules.shape[1]
        pairs = self.pair_lists(molecules)  # once: for the energies and for the domain check
        per_call = max(1, self.max_pairs // max(1, n * (n - 1) // 2))  # configurations whose pairs fit one call
        energies, forces = [], []
        for start in range(0, len(molecules), per_call):
            block = molecules[start:start + per_call]
            pair_atoms, owner = self._pair_index(3 * n, pairs[start:start + per_call])
            x = jnp.asarray(block.reshape(len(block), 3 * n, 3), dtype=self.pair.sim.real)
            e, f = self._energies(x, jnp.asarray(pair_atoms), jnp.asarray(owner), len(block))
            energies.append(np.asarray(e))
            forces.append(np.asarray(f))
        prediction = Prediction(np.concatenate(energies), np.concatenate(forces))
        domain = self.domain
        if domain is None:
            return prediction
        return prediction.flagged(out_of_domain=domain.check(molecules, pairs)[0])


def load_cluster(monomer: str | Path, pair: str | Path, switch: Switch = Switch(), **kwargs) -> ClusterForceField:
    """The cluster force field of two trained runs, after checking that they fit together: a monomer and a pair
    model, both exactly symmetric, the pair model trained on two-body energies, both at one level of theory."""
    from siqml_cli.runs import RunFolder

    runs = {"monomer": RunFolder(monomer), "pair": RunFolder(pair)}
    forcefields = {role: run.load_forcefield(**kwargs) for role, run in runs.items()}
    _check_model(forcefields["monomer"], "monomer", WATER)  # what the models are first, then what they learned
    _check_model(forcefields["pair"], "pair", PAIR)
    attrs = {role: run.dataset().attrs for role, run in runs.items()}
    levels = {role: a.get("level_of_theory") or "an unknown level of theory" for role, a in attrs.items()}
    if levels["monomer"] != levels["pair"]:
        raise SiqmlError(f"the monomer run {monomer} was trained on {levels['monomer']} labels, the pair run {pair} on "
                         f"{levels['pair']}; train both on data of one level of theory")
    if attrs["pair"].get("label_kind") != TWO_BODY:
        raise SiqmlError(f"the pair run {pair} was not trained on two-body energies E(ij) - E(i) - E(j) but on total "
                         "energies; train it on +molecule=water_pair")
    return ClusterForceField(forcefields["monomer"], forcefields["pair"], switch)
