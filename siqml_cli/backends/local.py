"""Local mode on the qubits the ISA circuit touches: today's 133-156 qubit devices rehearsed on this machine.

qiskit-ibm-runtime's local mode samples with `AerSamplerV2.from_backend(device)`, a simulator as wide
as the device, which a Heron device's width puts out of reach even for a 4-qubit circuit; given an
`AerSimulator` as its backend, it uses that simulator as it is. So the circuit is transpiled for the
whole device (its layout, routing and basis are the device's), and then the device is cut down to the
qubits the ISA circuit touches: their gates, couplings, gate errors and durations, readout errors,
T1/T2 and frequencies, renumbered 0..n-1, become an `AerSimulator` with the noise model Aer derives
from them (`AerSimulator.from_backend`). The runtime's Estimator then runs on it exactly as it runs on
a fake device, with all of its pre- and post-processing (twirling, TREX, ZNE, ...). Idle qubits are
left out, so noise acting on them, or crosstalk through them, is not simulated; their couplings
to active qubits, never used by the circuit, do not matter.
"""

from __future__ import annotations

from dataclasses import dataclass

from qiskit import QuantumCircuit
from qiskit.providers import BackendV2, Options
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import Target

IDLE_OPERATIONS = frozenset({"barrier", "delay"})


def active_qubits(circuit: QuantumCircuit) -> list[int]:
    """The device qubits the ISA circuit acts on (barriers and delays aside) or places the model on."""
    used = {circuit.find_bit(q).index for inst in circuit.data if inst.operation.name not in IDLE_OPERATIONS
            for q in inst.qubits}
    if circuit.layout is not None:
        used.update(circuit.layout.final_index_layout())
    return sorted(used)


def restricted_target(target: Target, qubits: list[int]) -> Target:
    """`target` on `qubits` only, renumbered in that order: every instruction whose qubits all lie among
    them, with its properties (error, duration), and those qubits' own properties. Angle bounds are not
    carried over: the circuit is already transpiled for the whole device, nothing is transpiled for this."""
    index = {q: i for i, q in enumerate(qubits)}
    qubit_properties = None if target.qubit_properties is None else [target.qubit_properties[q] for q in qubits]
    out = Target(description=f"{target.description or 'device'} on qubits {qubits}", num_qubits=len(qubits),
                 dt=target.dt, granularity=target.granularity, min_length=target.min_length,
                 pulse_alignment=target.pulse_alignment, acquire_alignment=target.acquire_alignment,
                 qubit_properties=qubit_properties)
    for name in target.operation_names:
        operation = target.operation_from_name(name)
        by_qargs = target[name]
        if None in by_qargs:  # a global instruction: control flow, given as a class, has no properties
            out.add_instruction(operation, None if isinstance(operation, type) else {None: by_qargs[None]},
                                name=name)
            continue
        kept = {tuple(index[q] for q in qargs): props for qargs, props in by_qargs.items()
                if all(q in index for q in qargs)}
        if kept:
            out.add_instruction(operation, kept, name=name)
    return out


class ActiveQubits(BackendV2):
    """A device cut down to some of its qubits: a target only, for `AerSimulator.from_backend`."""

    def __init__(self, device: BackendV2, qubits: list[int]):
        super().__init__(name=f"{device.name}", description=f"{device.name} on qubits {qubits}",
                         backend_version=getattr(device, "backend_version", None))
        self._target = restricted_target(device.target, qubits)

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self):
        return None

    @classmethod
    def _default_options(cls):
        return Options()

    def run(self, run_input, **options):
        raise NotImplementedError("only its simulator, AerSimulator.from_backend(...), runs circuits")


@dataclass
class CompactCircuit:
    """The ISA circuit and observable on `qubits` of the device only, and the simulator of those qubits."""

    circuit: QuantumCircuit
    observable: SparsePauliOp
    qubits: list[int]
    simulator: object


def compact(device: BackendV2, circuit: QuantumCircuit, observable: SparsePauliOp, seed: int) -> CompactCircuit:
    """The device-wide ISA `circuit` (and its laid-out `observable`) moved onto the qubits it touches,
    with an `AerSimulator` of those qubits' noise to run them in local mode."""
    from qiskit_aer import AerSimulator

    qubits = active_qubits(circuit)
    support = {q for pauli in observable.paulis for q in range(pauli.num_qubits) if pauli.z[q] or pauli.x[q]}
    qubits = sorted(set(qubits) | support)
    index = {q: i for i, q in enumerate(qubits)}
    small = QuantumCircuit(len(qubits), circuit.num_clbits, name=circuit.name, global_phase=circuit.global_phase)
    for inst in circuit.data:
        places = [circuit.find_bit(q).index for q in inst.qubits]
        if inst.operation.name in IDLE_OPERATIONS:
            places = [p for p in places if p in index]
            if not places:
                continue
        small.append(inst.operation, [index[p] for p in places],
                     [circuit.find_bit(c).index for c in inst.clbits])
    small_observable = SparsePauliOp([p[qubits] for p in observable.paulis], observable.coeffs)
    simulator = AerSimulator.from_backend(ActiveQubits(device, qubits), seed_simulator=seed)
    return CompactCircuit(small, small_observable, qubits, simulator)
