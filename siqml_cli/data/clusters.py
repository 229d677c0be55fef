"""Water clusters and water pairs from data: ring start geometries, the second-order many-body expansion of
PBE as extra labels of a cluster, and the two-body pairs a pair model is trained on (docs/data.md, "Water
clusters and two-body pairs").

A water cluster's atoms are whole molecules in O, H, H order: molecule k is atoms 3k, 3k+1, 3k+2. Its
labels are assembled from independent PySCF calculations on parts of it (`FragmentLabels`), so that
`generate.label_all` runs a cluster's monomers and pairs as separate tasks on all cores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations, islice
from pathlib import Path

import numpy as np

from siqml_cli.errors import SiqmlError

WATER = ("O", "H", "H")
#: Angstrom: the O-H bonds of a ring start geometry
RING_OH = 0.975
#: degrees: its H-O-H angle
RING_HOH = 104.5
#: degrees: how far a donated O-H is turned outwards from its O-O line, in the ring plane
RING_BEND = 10.0
#: the three kinds of pair `sample_water_pairs` draws, in the order they appear in a set
PAIR_KINDS = ("hbonded", "random", "clusters")
#: their default shares; without cluster files the `clusters` share goes to the others in proportion
PAIR_FRACTIONS = {"hbonded": 0.4, "random": 0.4, "clusters": 0.2}
#: what the energies and forces of a pair set are
TWO_BODY = "two-body: E(ij) - E(i) - E(j)"
#: what the extra labels of a cluster set are
SECOND_ORDER = ("mbe2_energies, mbe2_forces: second-order many-body expansion sum_i E(i) + sum_{i<j} "
                "[E(ij) - E(i) - E(j)] over all pairs, no switch, no cutoff, each term at the level of theory")


# --------------------------------------------------------------------------- molecules


def water_count(species, where: str = "the configuration") -> int:
    """The number of water molecules of `species`, or a one-line error if they are not whole O, H, H molecules."""
    species = tuple(species)
    if not species or len(species) % 3 or species != WATER * (len(species) // 3):
        raise SiqmlError(f"{where} has atoms {'-'.join(species)}: not whole water molecules in O, H, H order; "
                         "give every molecule as its O followed by its two H")
    return len(species) // 3


def molecule_atoms(molecules) -> np.ndarray:
    """The atom indices of the molecules `molecules` (each O, H, H), in that order."""
    return (3 * np.asarray(molecules, int)[:, None] + np.arange(3)).ravel()


def water_ring(n: int, r_oo: float = 2.8) -> tuple[tuple[str, ...], np.ndarray]:
    """A cyclic water n-mer start geometry: species and positions (3n, 3) in Angstrom.

    The oxygens sit on a regular n-gon in the xy plane with neighbouring O-O = `r_oo`. Molecule k donates
    its first H to the next oxygen: that O-H (`RING_OH`) points along O_k -> O_(k+1), turned `RING_BEND`
    outwards in the ring plane (a slightly bent H-bond, as in the minima, which keeps the donated H of a
    small ring apart). Its second H is free: at `RING_HOH` from the donated O-H, in the plane through the
    donated O-H and the z axis, so it points out of the ring plane, up for even k and down for odd k. For
    an even ring that alternates (the S4 tetramer and S6 hexamer minima); for an odd ring two neighbours
    (the last and the first) both point up, the up-up-down pattern of the cyclic trimer's minimum. The
    optimisation of `siqml data` then finds the minimum nearby (the hexamer's O ring puckers).
    """
    if n < 3:
        raise SiqmlError(f"a water ring needs at least 3 molecules, got {n}")
    radius = r_oo / (2 * np.sin(np.pi / n))
    phi = 2 * np.pi * np.arange(n) / n
    oxygens = radius * np.stack([np.cos(phi), np.sin(phi), np.zeros(n)], axis=1)
    hoh = np.deg2rad(RING_HOH)
    positions = []
    bend = np.deg2rad(RING_BEND)
    for k in range(n):
        along = oxygens[(k + 1) % n] - oxygens[k]
        along /= np.linalg.norm(along)
        outwards = np.array([along[1], -along[0], 0.0])  # the polygon runs anticlockwise: its outside is on the right
        along = np.cos(bend) * along + np.sin(bend) * outwards
        up = np.array([0.0, 0.0, 1.0 if k % 2 == 0 else -1.0])
        positions += [oxygens[k], oxygens[k] + RING_OH * along,
                      oxygens[k] + RING_OH * (np.cos(hoh) * along + np.sin(hoh) * up)]
    return WATER * n, np.array(positions)


# --------------------------------------------------------------------------- labels from fragments


@dataclass(frozen=True)
class FragmentLabels:
    """A configuration's labels from independent calculations on parts of it, one task each.

    `parts(species)` lists the atom indices of each part; `combine(species, results)` turns the parts'
    (energy, forces) into the configuration's energy, forces and extra labels (`Dataset.extras`);
    `extras(species)` names those extra labels with their per-configuration shapes.
    """

    parts: Callable[[tuple], list[np.ndarray]]
    combine: Callable[[tuple, list], tuple[float, np.ndarray, dict[str, np.ndarray]]]
    extras: Callable[[tuple], dict[str, tuple[int, ...]]]


def fragments(n_molecules: int) -> list[tuple[int, ...]]:
    """The monomers, then the pairs i < j, of a second-order expansion of `n_molecules` molecules."""
    return [(i,) for i in range(n_molecules)] + list(combinations(range(n_molecules), 2))


def second_order(n_molecules: int, labels: dict[tuple[int, ...], tuple[float, np.ndarray]]) -> tuple[float, np.ndarray]:
    """sum_i E(i) + sum_{i<j} [E(ij) - E(i) - E(j)] and its forces, from the label of every fragment.

    Each monomer appears in n - 1 pairs, so the sum is sum_{i<j} E(ij) - (n - 2) sum_i E(i); each
    fragment's forces act on its own atoms only.
    """
    energy, forces = 0.0, np.zeros((3 * n_molecules, 3))
    for fragment, (e, f) in labels.items():
        weight = 1.0 if len(fragment) == 2 else -(n_molecules - 2.0)
        energy += weight * e
        forces[molecule_atoms(fragment)] += weight * np.asarray(f)
    return energy, forces


def _cluster_parts(species) -> list[np.ndarray]:
    n = water_count(species, "a water cluster")
    return [np.arange(len(species))] + [molecule_atoms(f) for f in fragments(n)]


def _cluster_combine(species, results) -> tuple[float, np.ndarray, dict[str, np.ndarray]]:
    n = water_count(species, "a water cluster")
    (energy, forces), *rest = results
    mbe2_energy, mbe2_forces = second_order(n, dict(zip(fragments(n), rest)))
    return energy, forces, {"mbe2_energies": np.float64(mbe2_energy), "mbe2_forces": mbe2_forces}


#: a cluster: energies and forces of the whole cluster, and as extras those of the second-order expansion
CLUSTER_LABELS = FragmentLabels(_cluster_parts, _cluster_combine,
                                lambda species: {"mbe2_energies": (), "mbe2_forces": (len(species), 3)})


def _pair_parts(species) -> list[np.ndarray]:
    if water_count(species, "a water pair") != 2:
        raise SiqmlError(f"a water pair has 6 atoms O, H, H, O, H, H, got {'-'.join(species)}")
    return [np.arange(6), molecule_atoms([0]), molecule_atoms([1])]


def _pair_combine(species, results) -> tuple[float, np.ndarray, dict[str, np.ndarray]]:
    (pair, pair_forces), (first, first_forces), (second, second_forces) = results
    monomer_forces = np.concatenate([first_forces, second_forces])
    return pair - first - second, pair_forces - monomer_forces, {
        "dimer_energies": np.float64(pair), "dimer_forces": pair_forces,
        "monomer_energies": np.array([first, second]), "monomer_forces": monomer_forces}


#: a pair: its two-body energy and forces, and as extras the totals they are made of
PAIR_LABELS = FragmentLabels(_pair_parts, _pair_combine, lambda species: {
    "dimer_energies": (), "dimer_forces": (6, 3), "monomer_energies": (2,), "monomer_forces": (6, 3)})


# --------------------------------------------------------------------------- pair sampling


def pair_counts(n: int, fractions: dict | None = None, clusters=()) -> dict[str, int]:
    """How many of `n` pairs each kind gets: `fractions` (by kind, any positive scale) normalised, the
    `clusters` share dropped when no cluster files are given; rounded so that they add up to `n`."""
    given = dict(PAIR_FRACTIONS if fractions is None else fractions)
    unknown = set(given) - set(PAIR_KINDS)
    if unknown:
        raise SiqmlError(f"unknown pair kind(s) {', '.join(sorted(unknown))} in fractions; use {', '.join(PAIR_KINDS)}")
    shares = np.array([float(given.get(kind, 0.0)) for kind in PAIR_KINDS])
    if not clusters:
        shares[PAIR_KINDS.index("clusters")] = 0.0
    if (shares < 0).any() or not shares.sum() > 0:
        raise SiqmlError(f"the pair fractions must be non-negative with a positive sum, got {given}")
    bounds = np.round(n * np.cumsum(shares) / shares.sum()).astype(int)
    return dict(zip(PAIR_KINDS, np.diff(bounds, prepend=0).tolist()))


def random_pair(rng: np.random.Generator, r_oh: tuple[float, float], angle_deg: tuple[float, float],
                r_oo: tuple[float, float], min_contact: float) -> np.ndarray:
    """Two monomers drawn as `generate.sample_h2o` draws one, each turned uniformly at random about its O,
    with O-O uniform in `r_oo`; drawn again while two atoms of different molecules are closer than
    `min_contact`."""
    from siqml_cli.data.generate import random_rotation, water_monomer

    while True:
        first, second = (random_rotation(rng).apply(water_monomer(*rng.uniform(*r_oh, size=2), rng.uniform(*angle_deg)))
                         for _ in range(2))
        second += np.array([rng.uniform(*r_oo), 0.0, 0.0])
        if np.linalg.norm(first[:, None] - second[None], axis=-1).min() >= min_contact:
            return np.vstack([first, second])


def cluster_positions(paths) -> list[np.ndarray]:
    """The configurations (N, 3M, 3) of each cluster data file, checked to be whole water molecules."""
    from siqml_cli.data.io import read_hdf5
    from siqml_cli.paths import resolve_input

    found = []
    for path in paths:
        resolved = resolve_input(str(path))
        if not resolved.is_file():
            raise SiqmlError(f"cluster data file {path} not found; generate it first with "
                             f"`siqml data +molecule={Path(str(path)).stem}`")
        data = read_hdf5(resolved)
        if water_count(data.species, str(path)) < 2:
            raise SiqmlError(f"{path} holds one water molecule: no pairs to cut out; give a cluster's data file")
        found.append(data.positions)
    return found


def _pairs_of(rng: np.random.Generator, positions: np.ndarray):
    """Every pair i < j of molecules (molecule i first) of each configuration, configurations in random orders."""
    pairs = list(combinations(range(positions.shape[1] // 3), 2))
    while True:
        for config in rng.permutation(len(positions)):
            for pair in pairs:
                yield positions[config][molecule_atoms(pair)]


def cut_pairs(rng: np.random.Generator, count: int, clusters: list[np.ndarray]) -> np.ndarray:
    """`count` pairs (count, 6, 3) cut out of the configurations of `clusters` (one array per file), an equal
    share from each file: all pairs of one configuration, then of the next, in a random order of them."""
    shares = np.diff(np.round(np.linspace(0, count, len(clusters) + 1)).astype(int))
    pairs = [p for positions, share in zip(clusters, shares) for p in islice(_pairs_of(rng, positions), share)]
    return np.array(pairs).reshape(count, 6, 3)


def sample_water_pairs(rng: np.random.Generator, n: int, r_oh: tuple[float, float], angle_deg: tuple[float, float],
                       r_oo: tuple[float, float], random_r_oo: tuple[float, float] = (2.6, 7.0),
                       min_contact: float = 1.5, fractions: dict | None = None, clusters=()) -> np.ndarray:
    """`n` water pairs (n, 6, 3), in blocks by kind (`pair_counts`): `hbonded` from the dimer sampler
    (`generate.sample_water_dimer` with `r_oh`, `angle_deg`, `r_oo`), `random` from `random_pair` (O-O in
    `random_r_oo`, no two atoms of different molecules closer than `min_contact`), `clusters` cut out of the
    cluster data files `clusters` (`cut_pairs`); every pair then rotated and translated at random."""
    from siqml_cli.data.generate import place_randomly, sample_water_dimer

    counts = pair_counts(n, fractions, clusters)
    found = cluster_positions(clusters) if clusters else []  # checked even when their share rounds to none
    hbonded = [sample_water_dimer(rng, r_oh, angle_deg, r_oo) for _ in range(counts["hbonded"])]
    drawn = [place_randomly(random_pair(rng, r_oh, angle_deg, random_r_oo, min_contact), rng)
             for _ in range(counts["random"])]
    cut = [place_randomly(p, rng) for p in cut_pairs(rng, counts["clusters"], found)] if counts["clusters"] else []
    return np.array([*hbonded, *drawn, *cut]).reshape(n, 6, 3)


def pair_attrs(n: int, params: dict) -> dict:
    """What a sampled pair set records beside its parameters: how many pairs of each kind, in their order."""
    return {"pair_counts": pair_counts(n, params.get("fractions"), params.get("clusters", ()))}
