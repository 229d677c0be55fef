"""The permutation group of a molecule's identical atoms, from its covalent bond graph.

Two atoms are bonded when their distance in the reference geometry is below the sum of their
covalent radii times `BOND_TOLERANCE` (ASE's `natural_cutoffs`): the plain sum misses real bonds
(C-H at 1.09 Angstrom exceeds 0.76 + 0.31), and 1.2 keeps hydrogen bonds (O...H near 1.9 Angstrom)
and non-bonded neighbours (H...H of water, 1.5 Angstrom) out. The group of the bond graph is its
automorphisms that keep every atom's element (networkx's VF2 matcher), so exchanging two atoms
alone is in the group only when they are bonded alike; the larger group permutes identical
atoms freely. A permutation is a tuple `p` with atom `k` sent to atom `p[k]`.
"""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
from networkx.algorithms.isomorphism import GraphMatcher, categorical_node_match

from siqml_cli.errors import SiqmlError

#: bonded when the distance is below (r_i + r_j) * BOND_TOLERANCE, r the covalent radii
BOND_TOLERANCE = 1.2
#: "bonds": the permutations of identical atoms that map the bond graph onto itself;
#: "all": every permutation of identical atoms; "identity": no exchange at all (`symmetry=rotation`)
GROUPS = ("bonds", "all", "identity")


def bond_graph(species, positions, tolerance: float = BOND_TOLERANCE) -> nx.Graph:
    """Nodes 0..A-1 with their `element`; an edge per covalent bond (possibly disconnected: clusters)."""
    from ase import Atoms
    from ase.neighborlist import natural_cutoffs, neighbor_list

    species = tuple(species)
    positions = np.asarray(positions, dtype=float)
    if positions.shape != (len(species), 3):
        raise SiqmlError(f"the reference geometry has shape {positions.shape}, but {len(species)} atoms "
                         f"({'-'.join(species)}) need ({len(species)}, 3): give one position per atom")
    try:
        atoms = Atoms(symbols=list(species), positions=positions)
    except (KeyError, ValueError) as err:
        raise SiqmlError(f"unknown element in {'-'.join(species)} ({err}): use chemical symbols such as "
                         "H, C, N, O") from None
    first, second = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=tolerance))
    graph = nx.Graph()
    graph.add_nodes_from((k, {"element": element}) for k, element in enumerate(species))
    graph.add_edges_from((int(i), int(j)) for i, j in zip(first, second) if i < j)
    return graph


#: more automorphisms than this are not enumerated (24 unbonded identical atoms would have 24!): a one-line error
MAX_GROUP_ELEMENTS = 100_000


def automorphisms(graph: nx.Graph) -> tuple[tuple[int, ...], ...]:
    """Every permutation of the nodes that keeps the edges and each node's element, the identity first."""
    matcher = GraphMatcher(graph, graph, node_match=categorical_node_match("element", None))
    n = graph.number_of_nodes()
    found = set()
    for mapping in matcher.isomorphisms_iter():
        found.add(tuple(mapping[k] for k in range(n)))
        if len(found) > MAX_GROUP_ELEMENTS:
            raise SiqmlError(f"the bond graph has more than {MAX_GROUP_ELEMENTS} symmetries (many identical, "
                             "unbonded atoms?); check the geometry is one molecule in Angstrom, or use model.group=all")
    return tuple(sorted(found))


def identical_atom_classes(species) -> tuple[tuple[int, ...], ...]:
    """The atoms of each element, in order of first appearance."""
    classes: dict[str, list[int]] = {}
    for k, element in enumerate(species):
        classes.setdefault(element, []).append(k)
    return tuple(tuple(atoms) for atoms in classes.values())


def group_generators(species, positions, group: str = "bonds") -> tuple[tuple[int, ...], ...]:
    """Permutations that generate the group: every automorphism of the bond graph (a molecule small
    enough to simulate has few), or the exchanges of neighbouring atoms in each element's list."""
    if group == "bonds":
        return automorphisms(bond_graph(species, positions))
    if group == "identity":
        bond_graph(species, positions)  # the same checks of the atoms and geometry
        return (tuple(range(len(species))),)
    if group == "all":
        n = len(species)
        swaps = []
        for atoms in identical_atom_classes(species):
            for a, b in itertools.pairwise(atoms):
                swap = list(range(n))
                swap[a], swap[b] = b, a
                swaps.append(tuple(swap))
        return tuple(swaps) or (tuple(range(n)),)
    raise SiqmlError(f"the permutation group must be one of {', '.join(GROUPS)}, got {group!r}")


def group_elements(species, positions, group: str = "bonds") -> tuple[tuple[int, ...], ...]:
    """Every permutation in the group, the identity first (for checks: n! of them for n identical atoms)."""
    if group != "all":
        return group_generators(species, positions, group)
    n = len(species)
    classes = identical_atom_classes(species)
    elements = set()
    for images in itertools.product(*(itertools.permutations(atoms) for atoms in classes)):
        perm = [0] * n
        for atoms, image in zip(classes, images):
            for a, b in zip(atoms, image):
                perm[a] = b
        elements.add(tuple(perm))
    return tuple(sorted(elements))


def atom_orbits(n_atoms: int, generators) -> tuple[tuple[int, ...], ...]:
    """The orbits of the atoms under the group the permutations `generators` generate, in order of their first atom."""
    graph = nx.Graph()
    graph.add_nodes_from(range(n_atoms))
    graph.add_edges_from((k, g[k]) for g in generators for k in range(n_atoms))
    return tuple(sorted(tuple(sorted(c)) for c in nx.connected_components(graph)))
