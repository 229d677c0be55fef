"""Transpile once per run: the ISA circuit for the target, its observable on the chosen layout, its cost.

The circuit stays parametric through transpilation, so one ISA circuit serves every configuration
and every shifted angle as rows of a parameter array.
"""

from __future__ import annotations

from dataclasses import dataclass

from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager

from siqml_cli.backends.estimators import Target
from siqml_cli.errors import SiqmlError


@dataclass
class IsaCircuit:
    circuit: QuantumCircuit
    observable: SparsePauliOp
    depth: int
    two_qubit_gates: int
    operations: dict

    def record(self) -> dict:
        return {"depth": self.depth, "two_qubit_gates": self.two_qubit_gates, "operations": self.operations,
                "physical_qubits": physical_qubits(self.circuit)}


def physical_qubits(circuit: QuantumCircuit) -> list[int]:
    """The device qubits the model's qubits were placed on, in the model's order."""
    if circuit.layout is None:
        return list(range(circuit.num_qubits))
    return list(circuit.layout.final_index_layout())


def two_qubit_gate_count(circuit: QuantumCircuit) -> int:
    return sum(1 for inst in circuit.data if inst.operation.num_qubits == 2 and inst.operation.name != "barrier")


def transpile(circuit: QuantumCircuit, observable: SparsePauliOp, target: Target, optimization_level: int,
              seed: int) -> IsaCircuit:
    if target.num_qubits is not None and circuit.num_qubits > target.num_qubits:
        raise SiqmlError(f"the model's circuit needs {circuit.num_qubits} qubits but {target.name} has "
                         f"{target.num_qubits}; choose a larger device")
    if target.backend is not None:
        manager = generate_preset_pass_manager(optimization_level=optimization_level, backend=target.backend,
                                               seed_transpiler=seed)
    else:
        manager = generate_preset_pass_manager(optimization_level=optimization_level, basis_gates=target.basis_gates,
                                               seed_transpiler=seed)
    isa = manager.run(circuit)
    mapped = observable.apply_layout(isa.layout) if isa.layout is not None else observable
    ops = {name: int(count) for name, count in isa.count_ops().items()}
    return IsaCircuit(isa, mapped, isa.depth(), two_qubit_gate_count(isa), ops)
