"""The domain a trained model saw, so that answers outside it are flagged instead of looking normal.

A machine-learned potential is an interpolation: two atoms on one point, atoms 1000 Å apart or a
bond stretched threefold give finite, ordinary-looking energies that mean nothing. The domain is the
range of every interatomic distance in the training configurations, per unordered species pair and
per rank: for each pair of species (e.g. "H-O") the distances are sorted, and the k-th shortest one
has its own range. Sorting keeps the check invariant under exchanging atoms of one species (what the
symmetric models are invariant under), and ranks keep the short bonds apart from the longer
intermolecular distances of the same species pair (the water dimer's O-H bonds against its O...H
contacts), so one bond stretched to 3x is flagged although 3 Å is an ordinary O...H distance.

Each range is widened by `MARGIN`, a fraction of the distance at each end: with 10% no test
configuration of the shipped data sets is flagged (the training split's default, 80/20), while
thermal motion far beyond the sampled ranges, and every case above, is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siqml_cli.errors import SiqmlError

#: each distance range [low, high] seen in training is widened to [low (1 - MARGIN), high (1 + MARGIN)]
MARGIN = 0.1


def pair_name(a: str, b: str) -> str:
    """The unordered species pair as one key: 'H-O' for (O, H) and (H, O)."""
    return "-".join(sorted((a, b)))


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


@dataclass(frozen=True)
class Domain:
    """Per species pair, the range seen of its k-th shortest distance (k = 1, 2, ...), in Å.

    `seen[pair]` is an array (K, 2) of [min, max] over the training configurations; the accepted
    range is that widened by `margin` (`ranges`)."""

    species: tuple[str, ...]
    seen: dict[str, np.ndarray]
    margin: float = MARGIN

    @classmethod
    def from_dataset(cls, species, positions: np.ndarray, margin: float = MARGIN) -> Domain:
        """The domain of `positions` (N, A, 3), atoms in the order `species`."""
        species = tuple(str(s) for s in species)
        sorted_distances = _sorted_pair_distances(species, np.asarray(positions, dtype=float))
        seen = {pair: np.stack([d.min(axis=0), d.max(axis=0)], axis=1) for pair, d in sorted_distances.items()}
        return cls(species, seen, float(margin))

    @property
    def ranges(self) -> dict[str, np.ndarray]:
        """The accepted ranges (K, 2) per pair: what was seen, widened by the margin."""
        return {pair: np.stack([r[:, 0] * (1 - self.margin), r[:, 1] * (1 + self.margin)], axis=1)
                for pair, r in self.seen.items()}

    def check(self, positions: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """(outside (N,) bool, reasons (N,) str): True where a configuration lies outside the domain, with
        its worst distance named ("" where inside). Non-finite coordinates are outside."""
        positions = np.asarray(positions, dtype=float)
        if positions.ndim == 2:
            positions = positions[None]
        if positions.shape[1:] != (len(self.species), 3):
            raise SiqmlError(f"configurations of shape {positions.shape[1:]} do not fit this model's "
                             f"{len(self.species)} atoms ({'-'.join(self.species)})")
        n = len(positions)
        worst = np.zeros(n)  # how far outside, as a fraction of the bound
        reasons = [""] * n
        finite = np.isfinite(positions).all(axis=(1, 2))
        for k in np.flatnonzero(~finite):
            worst[k], reasons[k] = np.inf, "non-finite coordinates"
        ranges = self.ranges
        safe = np.where(finite[:, None, None], positions, 0.0)
        for pair, distances in _sorted_pair_distances(self.species, safe).items():
            low, high = ranges[pair][:, 0], ranges[pair][:, 1]
            excess = np.maximum((low - distances) / np.maximum(low, 1e-12), (distances - high) / high)  # (N, K)
            rank = np.argmax(excess, axis=1)
            value = excess[np.arange(n), rank]
            for k in np.flatnonzero(finite & (value > 0) & (value > worst)):
                r = rank[k]
                worst[k] = value[k]
                which = "" if distances.shape[1] == 1 else f"{_ordinal(r + 1)} shortest "
                reasons[k] = (f"{which}{pair} distance {distances[k, r]:.3f} Å outside the trained range "
                              f"{low[r]:.3f}-{high[r]:.3f} Å")
        return worst > 0, reasons

    def to_dict(self) -> dict:
        """JSON-ready: species, margin, and per pair the [min, max] seen of each ranked distance."""
        return {"species": list(self.species), "margin": self.margin,
                "distances": {pair: r.tolist() for pair, r in self.seen.items()}}

    @classmethod
    def from_dict(cls, record: dict) -> Domain:
        try:
            species = tuple(str(s) for s in record["species"])
            seen = {str(pair): np.asarray(r, dtype=float).reshape(-1, 2) for pair, r in record["distances"].items()}
            domain = cls(species, seen, float(record["margin"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SiqmlError(f"the recorded model domain is damaged ({type(exc).__name__}: {exc}); "
                             "train the run again") from None
        expected = {pair: len(d) for pair, d in _pair_indices(species).items()}
        if {pair: len(r) for pair, r in seen.items()} != expected:
            raise SiqmlError("the recorded model domain does not fit its species; train the run again")
        return domain


def _pair_indices(species: tuple[str, ...]) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for i in range(len(species)):
        for j in range(i + 1, len(species)):
            out.setdefault(pair_name(species[i], species[j]), []).append((i, j))
    return out


def _sorted_pair_distances(species: tuple[str, ...], positions: np.ndarray) -> dict[str, np.ndarray]:
    """Per species pair, the distances of every configuration (N, K), sorted along K."""
    out = {}
    for pair, indices in _pair_indices(species).items():
        i, j = np.array(indices).T
        out[pair] = np.sort(np.linalg.norm(positions[:, i] - positions[:, j], axis=-1), axis=1)
    return out


def describe_outside(outside: np.ndarray, reasons: list[str], shown: int = 3) -> str:
    """'2 of 50 configurations lie outside the training domain (configuration 3: ...; ...)': one line naming
    the first `shown` of them (0-based indices, as in the files) and why."""
    where = np.flatnonzero(outside)
    listed = "; ".join(f"configuration {i}: {reasons[i]}" for i in where[:shown])
    more = f"; {len(where) - shown} more" if len(where) > shown else ""
    noun = "configuration lies" if len(outside) == 1 else "configurations lie"
    return f"{len(where)} of {len(outside)} {noun} outside the training domain ({listed}{more})"


def check_cell(atoms, where: str = "") -> None:
    """Refuse a periodic configuration (anything with ASE's `pbc`): the models are molecular and know no
    periodic images, so their answer for a periodic cell would silently be that of an isolated molecule.
    `where` ('<file>: configuration 3') starts the message."""
    pbc = np.asarray(getattr(atoms, "pbc", False), dtype=bool)
    if pbc.any():
        axes = "".join(axis for axis, p in zip("xyz", np.broadcast_to(pbc, 3)) if p)
        raise SiqmlError(f"{where + ': ' if where else ''}a periodic cell (periodic along {axes}) was given, but "
                         "siqml models are molecular and know no periodic images; give the molecule without periodic "
                         "boundaries (pbc=False)")
