"""Side-by-side speed benchmark: siqml's fast simulator against the tools a user would otherwise pick.

Runs, in one process tree on this machine, the same model, data and batch through
  - siqml:       `Simulator` timed through `siqml_cli.train.loop.run_loop` (as scripts/bench.py does);
  - PennyLane:   `default.qubit`, interface jax, jit + vmap, with native Ising gates and closed-form
                 encodings (the fastest PennyLane form we found);
  - PennyLane (demo): the same, with every gate a `QubitUnitary` of `jax.scipy.linalg.expm`, exactly
                 as PennyLane's public demo of this model writes it (what a user who starts from it runs);
  - TensorCircuit-NG: JAX backend, jit + vmap, fused two-qubit gates, matching complex64/128;
  - qiskit-machine-learning `EstimatorQNN` (parameter shift) on `spec.to_qiskit()` with Qiskit's
                 `StatevectorEstimator` and Aer's `EstimatorV2`: one forward + one backward pass,
                 extrapolated from a few configurations.
PennyLane and TensorCircuit-NG use the very same compiled Adam step as siqml (`make_step`: the same
loss, mini-batch gather and optax update); only the energy function differs. Every implementation
is first checked against siqml in double precision (energies 1e-8, gradients 1e-6); a column that
disagrees, fails or is not installed gets no speed-up. Writes results/bench/peers.md and peers.csv.

    python scripts/bench_peers.py            # the full benchmark (~30-60 min on 2 cores)
    python scripts/bench_peers.py --quick    # fewer rows and repeats (development)

Each implementation and precision runs in its own worker process (`--worker`), so JAX's x64 switch
(which TensorCircuit-NG's set_dtype flips globally), peak RSS and failures stay separate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

IMPLS = ("siqml", "tensorcircuit", "pennylane", "pennylane_demo", "qnn_statevector", "qnn_aer")
LABELS = {"siqml": "siqml", "tensorcircuit": "TensorCircuit-NG", "pennylane": "PennyLane",
          "pennylane_demo": "PennyLane (demo)", "qnn_statevector": "EstimatorQNN (Statevector)",
          "qnn_aer": "EstimatorQNN (Aer)"}
JAX_PEERS = ("tensorcircuit", "pennylane", "pennylane_demo")
QNN_PEERS = ("qnn_statevector", "qnn_aer")
LOSSES = {"energy": 0.0, "energy+force": 1.0}  # force weight 1, as scripts/bench.py
E_TOL, G_TOL = 1e-8, 1e-6


# ============================================================================ models and data


@dataclass(frozen=True)
class ModelCase:
    key: str  # e.g. h2o, lih, water_dimer, ring8
    molecule: str  # data set
    symmetry: str
    layers: int
    blocks: int
    label: str


MAIN_MODELS = {
    "h2o": ModelCase("h2o", "h2o", "broken", 6, 1, "H2O D=6 B=1 broken"),
    "lih": ModelCase("lih", "lih", "full", 4, 2, "LiH D=4 B=2 full"),
    "water_dimer": ModelCase("water_dimer", "water_dimer", "full", 4, 1, "water dimer D=4 B=1 full"),
}


def ring_case(n: int) -> ModelCase:
    return ModelCase(f"ring{n}", "h2o", "broken", 4, 1, f"ring{n} (synthetic, {n} qubits) D=4 B=1")


def model_case(key: str) -> ModelCase:
    return MAIN_MODELS[key] if key in MAIN_MODELS else ring_case(int(key[4:]))


def build_spec(case: ModelCase):
    """The `ModelSpec`; `ringN` is a synthetic H2O-like model on N qubits for the qubit-count scan."""
    from siqml_cli.models import build_model

    if not case.key.startswith("ring"):
        return build_model(case.molecule, case.symmetry, case.layers, case.blocks)
    from siqml_cli.simulate.synthetic import ring_spec

    return ring_spec(int(case.key[4:]), case.layers, case.blocks)


def training_set(case: ModelCase, spec, min_size: int = 2048):
    """Scaled labels as `siqml train` uses them, tiled to >= min_size rows so every batch size is exact."""
    from siqml_cli.data import read_dataset
    from siqml_cli.forcefield import LabelScaler
    from siqml_cli.train.loop import TrainingSet

    data = read_dataset(REPO / "data" / f"{case.molecule}.h5", case.molecule)
    scaler = LabelScaler.fit(data.energies, spec.observable_range, 0.1)
    reps = -(-min_size // len(data.positions))
    tile = lambda a: np.concatenate([a] * reps)  # noqa: E731
    return TrainingSet(tile(data.positions), tile(scaler.to_model(data.energies)), tile(data.forces / scaler.slope))


# ============================================================================ circuit pieces shared by peers


def components(pairs) -> list[tuple[int, ...]]:
    """Connected groups of qubits of one coupling's pairs: one 2-qubit RH per lone pair, one local
    gate per group of overlapping pairs (the dimer's 3-qubit star gates)."""
    groups: list[set[int]] = []
    for i, j in pairs:
        hit = [g for g in groups if i in g or j in g]
        merged = {i, j}.union(*hit) if hit else {i, j}
        groups = [g for g in groups if g not in hit] + [merged]
    return [tuple(sorted(g)) for g in groups]


def local_generator(qubits: tuple[int, ...], pairs) -> np.ndarray:
    """sum of H_ij over `pairs` inside `qubits`, first listed qubit = most significant factor (the
    wire order of PennyLane and TensorCircuit-NG gates)."""
    from siqml_cli.models.blocks import PAULI

    k = len(qubits)
    out = np.zeros((2**k, 2**k), dtype=complex)
    for i, j in pairs:
        if i not in qubits:
            continue
        for p in "XYZ":
            factors = [PAULI[p] if q in (i, j) else PAULI["I"] for q in qubits]
            term = factors[0]
            for f in factors[1:]:
                term = np.kron(term, f)
            out += term
    return out


class CouplingGates:
    """exp(-i theta sum H_ij) of every coupling, split into its connected groups, as jnp matrices."""

    def __init__(self, spec, complex_dtype):
        import jax.numpy as jnp

        self.per_coupling = []
        for c in spec.couplings:
            groups = []
            for qubits in components(c.pairs):
                lam, vec = np.linalg.eigh(local_generator(qubits, c.pairs))
                groups.append((qubits, jnp.asarray(lam), jnp.asarray(vec, dtype=complex_dtype)))
            self.per_coupling.append((c.weight, groups))
        self.complex = complex_dtype

    def unitary(self, lam, vec, theta):
        import jax.numpy as jnp

        phase = jnp.exp(-1j * theta * lam.astype(theta.dtype)).astype(self.complex)
        return (vec * phase[None, :]) @ vec.conj().T


def encoding_matrix(v):
    """exp(-i v.sigma/2) as a 2x2 jnp matrix (the closed form `Simulator.encoding_gate` uses)."""
    import jax.numpy as jnp

    r = jnp.sqrt(jnp.sum(v * v) + jnp.finfo(v.dtype).tiny)
    c, s = jnp.cos(r / 2), jnp.sin(r / 2) / r
    return jnp.array([[c - 1j * s * v[2], -s * v[1] - 1j * s * v[0]],
                      [s * v[1] - 1j * s * v[0], c + 1j * s * v[2]]])


def rh_matrix(theta, complex_dtype):
    """RH(theta) = exp(-i theta (XX+YY+ZZ)) = e^{i theta} (cos 2theta I - i sin 2theta SWAP), one 4x4 gate."""
    import jax.numpy as jnp

    swap = jnp.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=complex_dtype)
    eye = jnp.eye(4, dtype=complex_dtype)
    return (jnp.exp(1j * theta) * (jnp.cos(2 * theta) * eye - 1j * jnp.sin(2 * theta) * swap)).astype(complex_dtype)


def encoded_vectors(spec, weights, positions):
    """(D+1, n_enc, 3) rotation vectors alpha * sign * x for one configuration (A, 3), through `centre`."""
    import jax.numpy as jnp

    x = spec.centre(positions)  # (V, 3)
    vec = jnp.stack([x[e.vector] for e in spec.encoding])  # (n_enc, 3)
    alpha = jnp.stack([weights["alpha"][:, e.scale] * e.sign for e in spec.encoding], axis=1)  # (D+1, n_enc)
    return alpha[:, :, None] * vec[None, :, :]


class JaxPeer:
    """The interface `siqml_cli.train.loop.make_step` needs: `.real` and `.expectation(weights, X)` -> (N,)."""

    def __init__(self, spec, precision: str):
        import jax
        import jax.numpy as jnp

        self.spec = spec
        self.real = jnp.float64 if precision == "double" else jnp.float32
        self.complex = jnp.complex128 if precision == "double" else jnp.complex64
        self.gates = CouplingGates(spec, self.complex)
        self._batched = jax.vmap(self.energy, in_axes=(None, 0))

    def expectation(self, weights, positions):
        return self._batched(weights, positions)


class TensorCircuitPeer(JaxPeer):
    """TensorCircuit-NG, JAX backend: one `tc.Circuit` per configuration, vmapped and jitted by the loop.
    Heisenberg gates are single fused 4x4 gates (`c.any`), overlapping orbits one local unitary."""

    def __init__(self, spec, precision: str, contractor: str = "greedy"):
        import tensorcircuit as tc

        self.tc = tc
        tc.set_backend("jax")
        tc.set_dtype("complex128" if precision == "double" else "complex64")  # flips jax_enable_x64 too
        tc.set_contractor(contractor)
        super().__init__(spec, precision)
        self.obs = np.real(local_generator((0, 1), [(0, 1)])).astype(complex)

    def energy(self, weights, positions):
        import jax.numpy as jnp

        tc, spec = self.tc, self.spec
        v = encoded_vectors(spec, weights, positions)
        c = tc.Circuit(spec.n_qubits)
        for i, j in spec.singlets:
            c.x(i)
            c.x(j)
            c.h(i)
            c.cnot(i, j)

        def encode(d):
            for k, e in enumerate(spec.encoding):
                c.any(e.qubit, unitary=encoding_matrix(v[d, k]).astype(self.complex))

        encode(0)
        for d in range(spec.layers):
            for b in range(spec.blocks):
                for w, groups in self.gates.per_coupling:
                    theta = weights["theta"][d, b, w]
                    for qubits, lam, vec in groups:
                        if len(qubits) == 2:
                            c.any(*qubits, unitary=rh_matrix(theta, self.complex))
                        else:
                            c.any(*qubits, unitary=self.gates.unitary(lam, vec, theta))
            if spec.symmetry_breaking:
                for q in range(spec.n_qubits):
                    c.rz(q, theta=weights["eps"][d])
            encode(d + 1)
        obs = jnp.asarray(self.obs, dtype=self.complex)
        return sum(jnp.real(c.expectation((tc.gates.Gate(obs.reshape(2, 2, 2, 2)), [i, j])))
                   for i, j in spec.observable_pairs)


class PennyLanePeer(JaxPeer):
    """PennyLane default.qubit, interface jax: IsingXX/YY/ZZ(2 theta) for each Heisenberg gate, QubitUnitary
    for the encodings (closed form instead of the demo's expm) and for overlapping orbits, RZ for SB,
    expval of the Heisenberg observable; backprop."""

    def __init__(self, spec, precision: str):
        import pennylane as qml

        self.qml = qml
        super().__init__(spec, precision)
        terms = [getattr(qml, f"Pauli{p}")(i) @ getattr(qml, f"Pauli{p}")(j)
                 for i, j in spec.observable_pairs for p in "XYZ"]
        self.observable = qml.Hamiltonian(np.ones(len(terms)), terms)
        dev = qml.device("default.qubit", wires=spec.n_qubits)
        self.qnode = qml.QNode(self._circuit, dev, interface="jax", diff_method="backprop")

    def encoding_gate(self, v, wire):
        self.qml.QubitUnitary(encoding_matrix(v).astype(self.complex), wires=wire)

    def coupling_gate(self, theta, qubits, lam, vec):
        if len(qubits) == 2:
            self.qml.IsingXX(2 * theta, wires=qubits)
            self.qml.IsingYY(2 * theta, wires=qubits)
            self.qml.IsingZZ(2 * theta, wires=qubits)
        else:
            self.qml.QubitUnitary(self.gates.unitary(lam, vec, theta), wires=qubits)

    def _circuit(self, weights, positions):
        qml, spec = self.qml, self.spec
        v = encoded_vectors(spec, weights, positions)
        for i, j in spec.singlets:
            qml.PauliX(i)
            qml.PauliX(j)
            qml.Hadamard(i)
            qml.CNOT([i, j])

        def encode(d):
            for k, e in enumerate(spec.encoding):
                self.encoding_gate(v[d, k], e.qubit)

        encode(0)
        for d in range(spec.layers):
            for b in range(spec.blocks):
                for w, groups in self.gates.per_coupling:
                    for qubits, lam, vec in groups:
                        self.coupling_gate(weights["theta"][d, b, w], qubits, lam, vec)
            if spec.symmetry_breaking:
                for q in range(spec.n_qubits):
                    qml.RZ(weights["eps"][d], wires=q)
            encode(d + 1)
        return qml.expval(self.observable)

    def energy(self, weights, positions):
        import jax.numpy as jnp

        return jnp.real(self.qnode(weights, positions))


class PennyLaneDemoPeer(PennyLanePeer):
    """PennyLane as its public demo of this model (tutorial_eqnn_force_field) builds it: each encoding
    gate and each Heisenberg gate a `QubitUnitary` of `jax.scipy.linalg.expm` of its generator."""

    def __init__(self, spec, precision: str):
        import jax.numpy as jnp

        from siqml_cli.models.blocks import PAULI

        super().__init__(spec, precision)
        self.sigmas = jnp.asarray(np.stack([PAULI[p] for p in "XYZ"]), dtype=self.complex)

    def encoding_gate(self, v, wire):
        import jax.numpy as jnp
        from jax.scipy.linalg import expm

        hamiltonian = jnp.einsum("i,ijk", v.astype(self.complex), self.sigmas)
        self.qml.QubitUnitary(expm(-0.5j * hamiltonian), wires=wire)

    def coupling_gate(self, theta, qubits, lam, vec):
        from jax.scipy.linalg import expm

        generator = (vec * lam.astype(vec.dtype)) @ vec.conj().T  # the coupling's sum of H_ij on these qubits
        self.qml.QubitUnitary(expm(-1j * theta.astype(self.complex) * generator), wires=qubits)


def make_jax_impl(impl: str, spec, precision: str):
    import jax

    if impl == "siqml":
        jax.config.update("jax_enable_x64", True)  # siqml always runs with x64 on and picks its dtypes
        from siqml_cli.simulate import Simulator

        return Simulator(spec, precision)
    if impl == "tensorcircuit":
        return TensorCircuitPeer(spec, precision)
    jax.config.update("jax_enable_x64", precision == "double")
    return PennyLaneDemoPeer(spec, precision) if impl == "pennylane_demo" else PennyLanePeer(spec, precision)


# ============================================================================ agreement (double precision)


def jax_reference(impl: str, spec, weights, positions, energies, forces) -> dict:
    """Energies, dE/dpositions, per-config dE/dweights and the gradients of both losses."""
    import jax
    import jax.numpy as jnp

    model = make_jax_impl(impl, spec, "double")
    w = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in weights.items()}
    x = jnp.asarray(positions, dtype=jnp.float64)
    y, fo = jnp.asarray(energies), jnp.asarray(forces)
    f = jax.jit(model.expectation)(w, x)
    dfdx = jax.jit(jax.grad(lambda ww, p: jnp.sum(model.expectation(ww, p)), argnums=1))(w, x)
    dfdw = jax.jit(jax.jacrev(lambda ww, p: model.expectation(ww, p)))(w, x)

    def loss(ww, fw):
        e, vjp = jax.vjp(lambda p: model.expectation(ww, p), x)
        g = vjp(jnp.ones_like(e))[0]
        return jnp.mean((e - y) ** 2) + fw * jnp.mean((g + fo) ** 2)

    out = {"energy": np.asarray(f), "dE/dx": np.asarray(dfdx)}
    out.update({f"dE/d{k}": np.asarray(v).reshape(len(x), -1) for k, v in dfdw.items()})
    grad_loss = jax.jit(jax.grad(loss), static_argnums=1)
    for name, fw in (LOSSES.items() if spec.n_qubits <= 8 else ()):  # 12 qubits: compile time of minutes
        grads = grad_loss(w, fw)
        out.update({f"d{name} loss/d{k}": np.asarray(v) for k, v in grads.items()})
    return out


# ============================================================================ timing


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def time_siqml(spec, training, batch: int, force_weight: float, precision: str, budget: float, max_steps: int):
    """One Adam step through `run_loop`, as scripts/bench.py: a short probe run (compile + first step,
    and a per-step estimate), then a run long enough for `budget` seconds (compiled step from the
    persistent cache this worker uses)."""
    from siqml_cli.runs import RunFolder
    from siqml_cli.simulate import Simulator
    from siqml_cli.train.loop import LoopSettings, run_loop

    sim = Simulator(spec, precision)

    def run(steps):
        settings = LoopSettings(steps=steps, lr=0.01, batch_size=batch, force_weight=force_weight, schedule="cosine",
                                lr_final_fraction=0.05, checkpoint_every=10**9, seed=0)
        with tempfile.TemporaryDirectory() as tmp:
            trained = run_loop(sim, training, spec.init_weights(0), settings, RunFolder(tmp), progress=False)
            return trained.seconds, trained.seconds_per_step

    probe_steps = 4
    total, per_step = run(probe_steps)
    compile_s = total - per_step * (probe_steps - 1)
    steps = int(np.clip(budget / max(per_step, 1e-6), 0, max_steps))
    if steps > probe_steps * 2:
        _, per_step = run(steps)
    else:
        steps = probe_steps
    return per_step, compile_s, steps


def time_jax_peer(model, spec, training, batch: int, force_weight: float, budget: float, max_steps: int):
    """The same compiled step as siqml's loop (`make_step`, same optimizer, batches and loss), with this
    peer's energy function; first call = compile + first step, then steps until `budget` seconds."""
    import jax
    import jax.numpy as jnp

    from siqml_cli.train.loop import INDEX_BLOCK, LoopSettings, batch_block, make_optimizer, make_step

    settings = LoopSettings(steps=max_steps, lr=0.01, batch_size=batch, force_weight=force_weight, schedule="cosine",
                            lr_final_fraction=0.05, checkpoint_every=10**9, seed=0)
    opt = make_optimizer(settings)
    weights = {k: jnp.asarray(v, dtype=model.real) for k, v in spec.init_weights(0).items()}
    opt_state = opt.init(weights)
    step_fn = make_step(model, opt, force_weight)
    x = jnp.asarray(training.positions, dtype=model.real)
    y = jnp.asarray(training.energies, dtype=model.real)
    f = jnp.asarray(training.forces, dtype=model.real)
    n = len(training.positions)
    block = jnp.asarray(batch_block(n, batch, 0, 0))
    t0 = time.perf_counter()
    weights, opt_state, losses = step_fn(weights, opt_state, x, y, f, block, 0)
    jax.block_until_ready(losses)
    compile_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    step = 1
    while step < max_steps and (time.perf_counter() - t1 < budget or step < 3):
        row = step % INDEX_BLOCK
        if row == 0:
            block = jnp.asarray(batch_block(n, batch, 0, step))
        weights, opt_state, losses = step_fn(weights, opt_state, x, y, f, block, row)
        step += 1
        if step % 10 == 0:
            jax.block_until_ready(losses)
    jax.block_until_ready(losses)
    if not np.all(np.isfinite(np.asarray(losses)[:2])):
        raise FloatingPointError("non-finite loss")
    return (time.perf_counter() - t1) / (step - 1), compile_s, step - 1


# ============================================================================ EstimatorQNN


class QNNPeer:
    def __init__(self, impl: str, spec):
        from qiskit_machine_learning.neural_networks import EstimatorQNN

        if impl == "qnn_aer":
            from qiskit_aer.primitives import EstimatorV2

            estimator = EstimatorV2(options={"default_precision": 0.0})
        else:
            from qiskit.primitives import StatevectorEstimator

            estimator = StatevectorEstimator(default_precision=0.0)
        from siqml_cli.backends.shift import shift_ready

        qc, obs = spec.to_qiskit()
        qc = shift_ready(qc)  # the dimer's PauliEvolutionGate, which Aer does not know, as rotations
        by_name = {}
        for p in qc.parameters:
            by_name.setdefault(p.vector.name, []).append(p)
        for k in by_name:
            by_name[k].sort(key=lambda p: p.index)
        self.spec = spec
        self.weight_names = ["theta"] + (["eps"] if spec.symmetry_breaking else [])
        self.input_params = by_name["enc"]
        self.weight_params = [p for k in self.weight_names for p in by_name[k]]
        self.qnn = {flag: EstimatorQNN(circuit=qc, estimator=estimator, observables=obs,
                                       input_params=self.input_params, weight_params=self.weight_params,
                                       input_gradients=flag, default_precision=0.0) for flag in (False, True)}

    def inputs(self, weights, positions):
        from siqml_cli.models import blocks

        angles = blocks.encoding_euler_angles(self.spec.rotation_vectors(weights, positions))
        return angles.reshape(len(positions), -1)

    def weight_vector(self, weights):
        return np.concatenate([np.ravel(weights[k]) for k in self.weight_names])

    def forward(self, weights, positions):
        return self.qnn[False].forward(self.inputs(weights, positions), self.weight_vector(weights))[:, 0]

    def backward(self, weights, positions, input_gradients: bool):
        return self.qnn[input_gradients].backward(self.inputs(weights, positions), self.weight_vector(weights))

    def reference(self, weights, positions) -> dict:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        f = self.forward(weights, positions)
        gin, gw = self.backward(weights, positions, True)
        gin, gw = gin[:, 0, :], gw[:, 0, :]
        out = {"energy": f}
        start = 0
        for k in self.weight_names:
            size = int(np.size(weights[k]))
            out[f"dE/d{k}"] = gw[:, start:start + size]
            start += size
        w = {k: jnp.asarray(v) for k, v in weights.items()}
        x = jnp.asarray(positions, dtype=jnp.float64)
        # the circuit's `enc` values as siqml computes them (spec.encoding_function), to chain the QNN's
        # input gradients to forces and alpha gradients
        _, vjp = jax.vjp(lambda a, p: jax.vmap(self.spec.encoding_function({**w, "alpha": a}))(p), w["alpha"], x)
        # per configuration: the angles of configuration n depend only on positions n (and alpha)
        dalpha = np.stack([np.asarray(vjp(jnp.asarray(np.eye(len(x))[n][:, None] * gin))[0]).ravel()
                           for n in range(len(x))])
        out["dE/dalpha"] = dalpha
        out["dE/dx"] = np.asarray(vjp(jnp.asarray(gin))[1])
        return out


def time_qnn(peer: QNNPeer, spec, training, batch: int, force_weight: float, budget: float):
    """Forward on k_f configurations + backward (weights; inputs too for forces) on k_b, both scaled
    linearly to the batch. A lower bound for an energy+force step, which needs second derivatives."""
    weights = spec.init_weights(0)
    x = training.positions[:batch]
    t0 = time.perf_counter()
    peer.forward(weights, x[:1])
    t_one = time.perf_counter() - t0
    k_f = int(np.clip(budget / 4 / max(t_one, 1e-4), 1, batch))
    t0 = time.perf_counter()
    peer.forward(weights, x[:k_f])
    t_fwd = (time.perf_counter() - t0) / k_f
    t0 = time.perf_counter()
    peer.backward(weights, x[:1], force_weight > 0)
    t_one = time.perf_counter() - t0
    k_b = int(np.clip(budget / 2 / max(t_one, 1e-4), min(2, batch), batch))  # at least 2: not one sample
    if k_b > 1:
        t0 = time.perf_counter()
        peer.backward(weights, x[:k_b], force_weight > 0)
        t_bwd = (time.perf_counter() - t0) / k_b
    else:
        t_bwd = t_one
    note = "" if (k_f == batch and k_b == batch) else f"extrapolated: forward {k_f}, backward {k_b} configs"
    if force_weight > 0:
        note = (note + "; " if note else "") + "lower bound (no 2nd derivatives)"
    return (t_fwd + t_bwd) * batch, note


# ============================================================================ worker


def worker(args) -> None:
    """One implementation in one precision: agreement data (double) and timing rows, as JSON."""
    out = {"impl": args.worker, "precision": args.precision, "rows": [], "agreement": {}, "errors": {}}
    if args.worker == "siqml":  # a fresh cache: the probe run compiles cold, the timed run reuses it
        from siqml_cli.simulate.statevector import enable_compilation_cache

        os.environ["SIQML_JAX_CACHE"] = tempfile.mkdtemp(prefix="siqml-bench-cache-")
        enable_compilation_cache()
    plan = json.loads(args.plan)
    for model_key, cases in plan.items():
        case = model_case(model_key)
        try:
            spec = build_spec(case)
            training = training_set(case, spec)
        except Exception as exc:  # a model that does not exist yet
            out["errors"][model_key] = f"pending: {type(exc).__name__}: {exc}".splitlines()[0][:200]
            continue
        peer = None
        try:
            if args.precision == "double" and args.agree:
                weights = spec.random_weights(7)
                idx = np.arange(0, 8 * 17, 17) % len(training.positions)
                n_agree = 2 if args.worker in QNN_PEERS else (4 if spec.n_qubits > 8 else 8)
                idx = idx[:n_agree]
                pos, e, fo = training.positions[idx], training.energies[idx], training.forces[idx]
                if args.worker in QNN_PEERS:
                    peer = QNNPeer(args.worker, spec)
                    ref = peer.reference(weights, pos)
                else:
                    ref = jax_reference(args.worker, spec, weights, pos, e, fo)
                np.savez(Path(args.result).with_suffix(f".{model_key}.npz"), **{k: v for k, v in ref.items()})
                out["agreement"][model_key] = n_agree
        except Exception as exc:
            out["errors"][model_key] = f"failed: {type(exc).__name__}: {exc}".splitlines()[0][:200]
            traceback.print_exc()
            continue
        model = None
        for batch, loss in cases:
            fw = LOSSES[loss]
            row = {"model": model_key, "batch": batch, "loss": loss, "impl": args.worker, "precision": args.precision}
            try:
                if args.worker == "siqml":
                    t, comp, steps = time_siqml(spec, training, batch, fw, args.precision, args.budget, args.max_steps)
                    row.update(seconds=t, compile_s=comp, steps=steps, note="")
                elif args.worker in JAX_PEERS:
                    model = model or make_jax_impl(args.worker, spec, args.precision)
                    t, comp, steps = time_jax_peer(model, spec, training, batch, fw, args.budget, args.max_steps)
                    row.update(seconds=t, compile_s=comp, steps=steps, note="")
                else:
                    peer = peer or QNNPeer(args.worker, spec)
                    t, note = time_qnn(peer, spec, training, batch, fw, args.budget)
                    row.update(seconds=t, compile_s=float("nan"), steps=1, note=note)
            except Exception as exc:
                row.update(seconds=float("nan"), compile_s=float("nan"), steps=0,
                           note=f"failed: {type(exc).__name__}: {exc}".splitlines()[0][:160])
                traceback.print_exc()
            print(json.dumps(row), flush=True)
            out["rows"].append(row)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.result).write_text(json.dumps(out))


# ============================================================================ orchestration


def installed(impl: str) -> str | None:
    """The library version, or None when it is not installed."""
    dist = {"siqml": "jax", "tensorcircuit": "tensorcircuit-ng", "pennylane": "pennylane",
            "pennylane_demo": "pennylane",
            "qnn_statevector": "qiskit-machine-learning", "qnn_aer": "qiskit-aer"}[impl]
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def run_worker(impl: str, precision: str, plan: dict, args, tmp: Path, agree: bool) -> dict:
    result = tmp / f"{impl}-{precision}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", impl, "--precision", precision,
           "--plan", json.dumps(plan), "--result", str(result), "--budget", str(args.budget),
           "--max-steps", str(args.max_steps)] + (["--agree"] if agree else [])
    print(f"--- {LABELS[impl]} ({precision}): {sum(len(v) for v in plan.values())} rows", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, stdout=sys.stdout, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0 or not result.exists():
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"impl": impl, "precision": precision, "rows": [], "agreement": {}, "crashed": tail[0][:200]}
    if proc.stderr.strip() and "Traceback" in proc.stderr:
        print(proc.stderr[-3000:], file=sys.stderr)
    out = json.loads(result.read_text())
    out["wall_s"] = time.perf_counter() - t0
    return out


def compare(ref: dict, other: dict) -> tuple[bool, str]:
    """Energies within E_TOL, every gradient within G_TOL (absolute, or relative to its scale if > 1)."""
    worst_e, worst_g, missing = 0.0, 0.0, []
    for k, v in other.items():
        if k not in ref:
            missing.append(k)
            continue
        v, r = np.asarray(v), np.asarray(ref[k])
        if r.ndim and v.ndim and r.shape[1:] == v.shape[1:] and len(v) < len(r):
            r = r[:len(v)]  # EstimatorQNN checks the first configurations of siqml's reference only
        diff = float(np.max(np.abs(v - r))) if np.size(v) else 0.0
        if k == "energy":
            worst_e = max(worst_e, diff)
        else:
            worst_g = max(worst_g, diff / max(1.0, float(np.max(np.abs(ref[k])))))
    ok = worst_e <= E_TOL and worst_g <= G_TOL and not missing
    return ok, f"max |dE| {worst_e:.1e}, max |d grad| {worst_g:.1e}"


def flops(spec, batch: int, loss: str) -> dict:
    """Rough floating-point operations of one step. dense: what siqml's simulator does (layer unitaries
    built from eigenbases and multiplied, 2^n x 2^n matrix-vector per configuration and layer);
    gates: a gate-by-gate statevector simulation (what TensorCircuit-NG/PennyLane amount to).
    Reverse mode ~3x a forward pass, the force loss (reverse over reverse) ~9x."""
    dim, D, B = 2**spec.n_qubits, spec.layers, spec.blocks
    C = len(spec.couplings)
    n_enc = len(spec.encoding)
    enc = (D + 1) * n_enc * 28 * dim  # fused 2x2 update on every amplitude pair
    obs = len(spec.observable_pairs) * 8 * dim
    dense = D * B * C * 16 * dim**3 + batch * (D * 8 * dim * dim + enc + obs)
    gate = 0
    for c in spec.couplings:
        for qubits in components(c.pairs):
            gate += 8 * 2 ** len(qubits) * dim
    per_cfg = D * B * gate + D * (6 * dim if spec.symmetry_breaking else 0) + enc + obs
    mult = 9 if loss == "energy+force" else 3
    return {"dense": mult * dense, "gates": mult * batch * per_cfg}


def peak_gflops(precision: str) -> tuple[float, str]:
    """cores x clock x FLOP/cycle: 2 FMA pipes x 256-bit (4 doubles / 8 floats) x 2 on AVX2+FMA."""
    mhz = 0.0
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz") and not mhz:
                mhz = float(line.split(":")[1])
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    per_cycle = (16 if "fma" in flags.split() and "avx2" in flags.split() else 8) * (2 if precision == "single" else 1)
    cores = os.cpu_count() or 1
    return cores * mhz * 1e-3 * per_cycle, f"{cores} cores x {mhz / 1e3:.2f} GHz x {per_cycle} FLOP/cycle"


def fmt_time(s: float) -> str:
    if not np.isfinite(s):
        return "—"
    if s >= 1:
        return f"{s:.3g} s"
    return f"{s * 1e3:.3g} ms"


def fmt_ratio(r: float) -> str:
    if not np.isfinite(r):
        return "—"
    return f"{r:.3g}x" if r < 1e4 else f"{r:.2e}x"


def make_plans(only, quick: bool, models=None, scans: bool = True) -> dict:
    """{(impl, precision): {model: [(batch, loss), ...]}}. Every double worker first checks agreement.

    Full: H2O and LiH at batch 32 and 256 (the dimer at 32) in double and single precision (EstimatorQNN:
    double only), plus the batch scan and qubit scan (siqml and TensorCircuit-NG, single). Quick: single
    precision only (double workers check agreement), EstimatorQNN at batch 256 on H2O and LiH (not the
    dimer: its parameter-shift agreement check alone takes minutes). PennyLane (demo): H2O and LiH."""
    main_cases = [(b, loss) for b in (32, 256) for loss in LOSSES]
    dimer = [(32, loss) for loss in LOSSES]
    plans = {}
    for impl in only:
        if impl in QNN_PEERS:
            cases = ({m: [(256, loss) for loss in LOSSES] for m in ("h2o", "lih")} if quick else
                     {"h2o": main_cases, "lih": main_cases, "water_dimer": dimer})
            plans[(impl, "double")] = cases
            continue
        full = {"h2o": list(main_cases), "lih": list(main_cases), "water_dimer": list(dimer)}
        if impl == "pennylane_demo":  # the demo builds H2O; on the dimer its expm gates take minutes to compile
            del full["water_dimer"]
        plans[(impl, "double")] = {k: [] for k in full} if quick else full
        single = {k: list(v) for k, v in full.items()}
        if impl in ("siqml", "tensorcircuit"):
            batches = (64, 128, 1024) if quick else (64, 128, 512, 1024)
            single["h2o"] += [(b, loss) for b in batches for loss in LOSSES]
            for n in ((4, 6, 8) if quick else (4, 6, 8, 10)):
                single[f"ring{n}"] = [(32, loss) for loss in LOSSES]
        plans[(impl, "single")] = single
    if models is not None or not scans:
        keep = lambda m: (models is None or m in models or (m.startswith("ring") and scans))  # noqa: E731
        for key, plan in plans.items():
            plans[key] = {m: [(b, loss) for b, loss in cases if scans or m.startswith("ring") or b in (32, 256)]
                          for m, cases in plan.items() if keep(m) and (scans or not m.startswith("ring"))}
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and repeats, for development")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench")
    parser.add_argument("--only", default=",".join(IMPLS), help=f"comma-separated subset of {','.join(IMPLS)}")
    parser.add_argument("--budget", type=float, default=None, help="seconds of timed steps per row")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--models", default=None, help="comma-separated subset of h2o,lih,water_dimer")
    parser.add_argument("--no-scans", action="store_true", help="skip the batch-size and qubit-count scans")
    # worker mode (internal)
    parser.add_argument("--worker", choices=IMPLS)
    parser.add_argument("--precision", choices=("double", "single"))
    parser.add_argument("--plan")
    parser.add_argument("--result")
    parser.add_argument("--agree", action="store_true")
    args = parser.parse_args()
    if args.budget is None:
        args.budget = 1.0 if args.quick else 4.0
    if args.max_steps is None:
        args.max_steps = 40 if args.quick else 300
    if args.worker:
        return worker(args)

    only = [i for i in args.only.split(",") if i]
    plans = make_plans(only, args.quick, args.models.split(",") if args.models else None, not args.no_scans)

    results = {}
    versions = {}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmpdir:
        tmp = Path(tmpdir)
        for (impl, prec), plan in plans.items():
            version = installed(impl)
            if version is None:
                results[(impl, prec)] = {"impl": impl, "precision": prec, "rows": [], "agreement": {},
                                         "missing": True}
                continue
            versions[impl] = version
            results[(impl, prec)] = run_worker(impl, prec, plan, args, tmp, agree=prec == "double")
        agreement = {}
        for impl in only:
            res = results.get((impl, "double"), {})
            for model_key in (m for m in MAIN_MODELS if m in plans.get((impl, "double"), {})):
                status = None
                if res.get("missing"):
                    status = (False, "not installed (pip install -e '.[bench]')")
                elif res.get("crashed"):
                    status = (False, f"failed: {res['crashed']}")
                elif model_key in res.get("errors", {}):
                    status = (False, res["errors"][model_key])
                elif impl == "siqml":
                    status = (True, "reference") if model_key in res.get("agreement", {}) else (False, "no reference")
                else:
                    mine = tmp / f"{impl}-double.{model_key}.npz"
                    ref = tmp / f"siqml-double.{model_key}.npz"
                    if not mine.exists() or not ref.exists():
                        status = (False, "not checked")
                    else:
                        try:
                            status = compare(dict(np.load(ref)), dict(np.load(mine)))
                        except Exception as exc:  # a column that cannot be compared: no speed-up, the report stands
                            status = (False, f"not comparable: {type(exc).__name__}: {exc}"[:200])
                agreement[(impl, model_key)] = status
    write_report(args, only, results, agreement, versions)


def write_report(args, only, results, agreement, versions) -> None:
    import pandas as pd

    rows = [r for res in results.values() for r in res.get("rows", [])]
    df = pd.DataFrame(rows, columns=["model", "batch", "loss", "impl", "precision", "seconds", "compile_s",
                                     "steps", "note"])
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "peers.csv", index=False)

    def get(model, batch, loss, impl, prec):
        prec = "double" if impl in QNN_PEERS else prec  # EstimatorQNN runs in double only
        m = df[(df.model == model) & (df.batch == batch) & (df.loss == loss) & (df.impl == impl)
               & (df.precision == prec)]
        return m.iloc[0] if len(m) else None

    def model_status(impl, model):
        return agreement.get((impl, model), (impl.startswith("ring") or False, ""))

    lines = []
    now = datetime.now(timezone.utc)
    lib = ", ".join(f"{LABELS[k] if k != 'siqml' else 'jax'} {v}" for k, v in versions.items() if k != "pennylane_demo")
    extra = []
    for dist in ("jaxlib", "qiskit", "optax", "numpy"):
        try:
            extra.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    lines.append(f"Measured {now:%Y-%m-%d %H:%M} UTC on {cpu_model()}, {os.cpu_count()} cores "
                 f"({platform.python_implementation()} {platform.python_version()}); {lib}; {', '.join(extra)}. "
                 f"{'--quick, ' if args.quick else ''}{args.budget:g} s of timed steps per row (at most "
                 f"{args.max_steps}), first step excluded.")
    lines.append("")
    lines.append("### Agreement (double precision, random weights, the same configurations)")
    lines.append("")
    models_run = [m for m in MAIN_MODELS if any((impl, m) in agreement for impl in only) or m in set(df.model)]
    lines.append("| implementation | " + " | ".join(models_run) + " |")
    lines.append("|---|" + "---|" * len(models_run))
    for impl in only:
        cells = []
        for model in models_run:
            ok, text = agreement.get((impl, model), (False, "—"))
            cells.append(("✓ " if ok else "✗ ") + text)
        lines.append(f"| {LABELS[impl]} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Tolerances: energies {E_TOL:g}, gradients {G_TOL:g} (dE/dpositions, dE/dweights per configuration, "
                 "and the weight gradients of both losses for the JAX peers; EstimatorQNN: 2 configurations, its "
                 "input gradients chained through the Euler angles to positions and alpha). A column that does not "
                 "agree gets no speed-up.")

    for prec in ("single", "double"):
        sub = df[(df.precision == prec) & df.model.isin(list(MAIN_MODELS))]
        if not len(sub[sub.impl == "siqml"]):  # --quick: the double workers only check agreement
            continue
        lines.append("")
        lines.append(f"### Seconds per Adam step ({prec} precision; the speed-up of siqml over each peer, same run)")
        lines.append("")
        peers = [i for i in only if i != "siqml"]
        head = "| model | batch | loss | siqml | " + " | ".join(
            LABELS[p] + (" (double)" if p in QNN_PEERS and prec == "single" else "") for p in peers) + " |"
        lines.append(head)
        lines.append("|---|---:|---|---:|" + "---:|" * len(peers))
        for model in models_run:
            for batch in (32, 256):
                for loss in LOSSES:
                    if model == "water_dimer" and batch != 32:
                        continue
                    base = get(model, batch, loss, "siqml", prec)
                    ok_base, text_base = agreement.get(("siqml", model), (False, ""))
                    if base is None:
                        reason = text_base or "not run"
                        if model == "water_dimer" and "pending" in (text_base or "pending"):
                            reason = "pending (no water_dimer model registered yet)"
                        lines.append(f"| {MAIN_MODELS[model].label} | {batch} | {loss} | {reason} |"
                                     + " |" * len(peers))
                        continue
                    cells = [fmt_time(base.seconds)]
                    for p in peers:
                        r = get(model, batch, loss, p, prec)
                        ok, text = agreement.get((p, model), (False, "not run"))
                        if r is None or not np.isfinite(r.seconds):
                            cells.append(text if not ok else (r.note if r is not None else "not run"))
                            continue
                        cell = fmt_time(r.seconds)
                        if ok and ok_base:
                            cell += f" (**{fmt_ratio(r.seconds / base.seconds)}**)"
                        else:
                            cell += f" (no speed-up: {text})"
                        if r.note:
                            cell += f" [{r.note}]"
                        cells.append(cell)
                    lines.append(f"| {MAIN_MODELS[model].label} | {batch} | {loss} | " + " | ".join(cells) + " |")

    lines.append("")
    lines.append("### Compile + first step of the jitted paths (s)")
    lines.append("")
    lines.append("| model | batch | loss | precision | "
                 + " | ".join(LABELS[i] for i in only if i not in QNN_PEERS) + " |")
    lines.append("|---|---:|---|---|" + "---:|" * len([i for i in only if i not in QNN_PEERS]))
    for prec in ("single", "double"):
        for model in MAIN_MODELS:
            for batch in (32, 256):
                for loss in LOSSES:
                    cells = []
                    for impl in (i for i in only if i not in QNN_PEERS):
                        r = get(model, batch, loss, impl, prec)
                        cells.append(f"{r.compile_s:.1f}" if r is not None and np.isfinite(r.compile_s) else "—")
                    if all(c == "—" for c in cells):
                        continue
                    lines.append(f"| {model} | {batch} | {loss} | {prec} | " + " | ".join(cells) + " |")

    # scaling
    scan = df[(df.precision == "single") & (df.impl.isin(["siqml", "tensorcircuit"]))]
    lines.append("")
    lines.append("### Step time vs batch size (H2O D=6 B=1, single precision)")
    lines.append("")
    lines.append("| batch | loss | siqml | TensorCircuit-NG | speed-up | siqml µs per config | dense GFLOP/step | "
                 "siqml GFLOP/s | % of peak |")
    lines.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    peak_s, peak_text = peak_gflops("single")
    spec_cache = {}

    def spec_of(model):
        if model not in spec_cache:
            spec_cache[model] = build_spec(model_case(model))
        return spec_cache[model]

    ok_tc = agreement.get(("tensorcircuit", "h2o"), (False, ""))[0]
    for loss in LOSSES:
        for batch in sorted(set(scan[scan.model == "h2o"].batch)):
            s = get("h2o", batch, loss, "siqml", "single")
            t = get("h2o", batch, loss, "tensorcircuit", "single")
            if s is None:
                continue
            fl = flops(spec_of("h2o"), int(batch), loss)
            ratio = fmt_ratio(t.seconds / s.seconds) if (t is not None and ok_tc) else "—"
            rate = fl["dense"] / s.seconds / 1e9
            tc_time = fmt_time(t.seconds) if t is not None else "—"
            lines.append(f"| {batch} | {loss} | {fmt_time(s.seconds)} | {tc_time} | "
                         f"{ratio} | {s.seconds / batch * 1e6:.1f} | {fl['dense'] / 1e9:.3g} | {rate:.3g} | "
                         f"{100 * rate / peak_s:.2g}% |")
    lines.append("")
    lines.append("### Step time vs qubit count (batch 32, single precision)")
    lines.append("")
    lines.append("| model | qubits | loss | siqml | TensorCircuit-NG | speed-up | dense GFLOP/step "
                 "| gate-by-gate GFLOP/step | siqml GFLOP/s | % of peak |")
    lines.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    ring_models = sorted({m for m in scan.model if m.startswith("ring")}, key=lambda m: int(m[4:]))
    for loss in LOSSES:
        for model in ring_models + ["water_dimer"]:
            s = get(model, 32, loss, "siqml", "single")
            t = get(model, 32, loss, "tensorcircuit", "single")
            if model == "water_dimer" and s is None:
                status = agreement.get(("siqml", "water_dimer"), (False, "pending"))[1]
                lines.append(f"| water dimer D=4 B=1 | 12 | {loss} | pending ({status[:80]}) | | | | | | |")
                continue
            if s is None:
                continue
            spec = spec_of(model)
            fl = flops(spec, 32, loss)
            tc_ok = model.startswith("ring") or agreement.get(("tensorcircuit", model), (False, ""))[0]
            ratio = fmt_ratio(t.seconds / s.seconds) if (t is not None and np.isfinite(t.seconds) and tc_ok) else "—"
            rate = min(fl["dense"], fl["gates"]) / s.seconds / 1e9  # the smaller count: a lower bound on the work
            label = MAIN_MODELS[model].label if model in MAIN_MODELS else model_case(model).label
            lines.append(f"| {label} | {spec.n_qubits} | {loss} | {fmt_time(s.seconds)} | "
                         f"{fmt_time(t.seconds) if t is not None else '—'} | {ratio} | {fl['dense'] / 1e9:.3g} | "
                         f"{fl['gates'] / 1e9:.3g} | {rate:.3g} | {100 * rate / peak_s:.2g}% |")
    lines.append("")
    lines.append(f"Peak of this CPU (single precision): {peak_s:.0f} GFLOP/s = {peak_text}; double: "
                 f"{peak_gflops('double')[0]:.0f} GFLOP/s. FLOP counts are rough: forward-pass operations "
                 "(complex multiply-add = 8) times 3 for the energy loss's reverse pass and 9 for the force loss "
                 "(reverse over reverse); 'dense' is what siqml's simulator does up to 4 qubits (each layer folded "
                 "into one 2^n x 2^n unitary, O(8^n) to build, O(4^n) per configuration), 'gate-by-gate' what a "
                 "statevector simulator applying each gate does (O(2^n) per gate); beyond 4 qubits siqml fuses each "
                 "layer into blocks of at most 6 qubits, in between. In this table GFLOP/s and % of peak use the "
                 "smaller count. The ring models are synthetic (H2O data, "
                 "n qubits in a ring, D=4): they exist only to show the growth with n; their TC speed-ups are "
                 "not agreement-checked.")
    lines.append("")
    lines.append("### Peak memory (RSS of each worker process)")
    lines.append("")
    lines.append("| implementation | precision | peak RSS (MB) | worker wall time (s) |")
    lines.append("|---|---|---:|---:|")
    for (impl, prec), res in results.items():
        if "peak_rss_mb" in res:
            wall = res.get("wall_s", float("nan"))
            lines.append(f"| {LABELS[impl]} | {prec} | {res['peak_rss_mb']:.0f} | {wall:.0f} |")
        else:
            why = "not installed" if res.get("missing") else res.get("crashed", "—")
            lines.append(f"| {LABELS[impl]} | {prec} | {why} | |")
    notes = [r for r in rows if r.get("note", "").startswith("failed")]
    if notes:
        lines.append("")
        lines.append("Failed rows: " + "; ".join(f"{r['impl']} {r['model']} {r['batch']} {r['loss']} {r['precision']}: "
                                                 f"{r['note']}" for r in notes))
    text = "\n".join(lines) + "\n"
    (args.out / "peers.md").write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
