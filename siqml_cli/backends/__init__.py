"""Running a trained model's circuits on Qiskit backends: Aer, IBM fake devices (local mode), IBM Quantum.

The circuit (what) comes from `ModelSpec.to_qiskit()`; this package decides where it runs:
`settings` (the `backend` config group), `estimators` (target and Estimator V2), `isa`
(transpile once), `local` (a device cut down to the qubits the circuit touches, for local mode),
`shift` (energies and forces from expectation values), `symmetrize` (symmetric copies of each
configuration and their spread), `forcefield` (a trained run on a backend), `jobs` (submit and
retrieve on the IBM service or its local mode).
"""
