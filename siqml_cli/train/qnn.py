"""Training on a Qiskit backend: qiskit-machine-learning's `EstimatorQNN` with parameter-shift gradients.

The fast simulator trains by autodiff; here every value and every gradient comes from an Estimator
V2 (Aer, exact or with shots, optionally with a noise model), so a model can be trained under shot
noise or device noise. The QNN's inputs are the encoding angles (`spec.encoding_function`: computed
classically from the positions and, for a siVQLM, the scales alpha) and its weights the circuit's
other angles (Heisenberg and SB, or the generic VQLM's RY/RZ); the gradient with respect to alpha
follows by the chain rule through the encoding angles (JAX). A trained observable is measured as its
terms (one QNN output each) and weighed classically, so its weights' gradient is the terms' values.
Energy loss only: force terms would need second derivatives from the device.
"""

from __future__ import annotations

import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from siqml_cli.backends.estimators import make_estimator, make_target
from siqml_cli.backends.settings import BackendSettings
from siqml_cli.backends.shift import shift_ready
from siqml_cli.errors import SiqmlError
from siqml_cli.models.spec import ModelSpec
from siqml_cli.precision import double_precision
from siqml_cli.train.loop import METRIC_COLUMNS, LoopResult, LoopSettings, TrainingSet, make_optimizer

log = logging.getLogger("siqml")


class QnnModel:
    """f(X) and the energy-loss gradient for all trainable weights, through an `EstimatorQNN`."""

    def __init__(self, spec: ModelSpec, settings: BackendSettings):
        from qiskit.transpiler import generate_preset_pass_manager
        from qiskit_machine_learning.gradients import ParamShiftEstimatorGradient
        from qiskit_machine_learning.neural_networks import EstimatorQNN

        if settings.kind != "aer":
            raise SiqmlError(f"training runs on backend=aer (exact, shots or a noise model); backend={settings.kind} "
                             "would send one job per step: train on Aer with that device's noise instead "
                             "(backend=aer backend.noise.device=<fake device>)")
        self.spec = spec
        circuit, _ = spec.to_qiskit()
        circuit = shift_ready(circuit)  # the dimer's PauliEvolutionGate: rotations that Aer and the shift rule know
        target = make_target(settings)
        estimator = make_estimator(settings, target)
        pass_manager = None
        if settings.noise.active:  # noise acts on physical gates: the QNN's circuits must be ISA circuits
            kwargs = {"backend": target.backend} if target.backend is not None else {"basis_gates": target.basis_gates}
            pass_manager = generate_preset_pass_manager(optimization_level=settings.optimization_level,
                                                        seed_transpiler=settings.seed, **kwargs)
        params = list(circuit.parameters)
        self.inputs = [p for p in params if p.vector.name == "enc"]
        self.weight_params = [p for p in params if p.vector.name != "enc"]
        precision = 0.0 if settings.shots is None else (settings.shots - 0.5) ** -0.5
        self.qnn = EstimatorQNN(circuit=circuit, estimator=estimator, observables=spec.observable_terms(),
                                input_params=self.inputs, weight_params=self.weight_params, input_gradients=True,
                                default_precision=precision, pass_manager=pass_manager,
                                gradient=ParamShiftEstimatorGradient(estimator, pass_manager=pass_manager))
        self.enc_index = np.array([p.index for p in self.inputs])
        self.circuit_weights = sorted({p.vector.name for p in self.weight_params})  # e.g. theta, eps

    def _weight_vector(self, weights: dict) -> np.ndarray:
        flat = {name: np.ravel(np.asarray(weights[name], dtype=float)) for name in self.circuit_weights}
        return np.array([flat[p.vector.name][p.index] for p in self.weight_params])

    def _encodings(self, weights, positions) -> jnp.ndarray:
        return jax.vmap(self.spec.encoding_function(weights))(jnp.asarray(positions))[:, self.enc_index]

    @double_precision
    def loss_and_gradient(self, weights: dict, positions: np.ndarray, targets: np.ndarray) -> tuple[float, dict]:
        """Energy MSE (scaled units) and its gradient for every entry of `weights`."""
        as_jax = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in weights.items()}
        enc, enc_vjp = jax.vjp(lambda w: self._encodings(w, positions), as_jax)
        inputs, w = np.asarray(enc), self._weight_vector(weights)
        terms = self.qnn.forward(inputs, w)  # (N, observable terms)
        c = self.spec.observable_weights(weights)
        f = terms @ c
        input_grad, weight_grad = self.qnn.backward(inputs, w)
        residual = 2 * (f - targets) / len(targets)
        # through the encoding: alpha for a siVQLM; zeros for weights the encoding does not read
        grads = {k: np.asarray(g) for k, g in
                 enc_vjp(jnp.asarray(residual[:, None] * np.einsum("ntj,t->nj", input_grad, c)))[0].items()}
        flat_grad = residual @ np.einsum("ntj,t->nj", weight_grad, c)
        if "observable" in grads:
            grads["observable"] = residual @ terms
        for name in self.circuit_weights:
            g = np.zeros(np.size(weights[name]))
            for value, p in zip(flat_grad, self.weight_params):
                if p.vector.name == name:
                    g[p.index] += value
            grads[name] = grads[name] + g.reshape(np.shape(weights[name]))
        return float(np.mean((f - targets) ** 2)), grads


@double_precision
def run_qnn_loop(spec: ModelSpec, data: TrainingSet, weights: dict, s: LoopSettings, settings: BackendSettings):
    """Adam on the EstimatorQNN's loss; returns a `LoopResult` like `run_loop`."""
    if s.force_weight > 0:
        raise SiqmlError("training on a backend uses the energy loss only (forces would need second derivatives "
                         "from the device): add loss=energy")
    model = QnnModel(spec, settings)
    opt = make_optimizer(s)
    weights = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in weights.items()}
    state = opt.init(weights)
    n = len(data.energies)
    batch = n if s.batch_size is None else min(s.batch_size, n)
    rows = []
    t0 = time.perf_counter()
    for step in range(1, s.steps + 1):
        index = np.sort(np.random.default_rng((s.seed, step)).choice(n, size=batch, replace=False))
        loss, grads = model.loss_and_gradient({k: np.asarray(v) for k, v in weights.items()},
                                              data.positions[index], data.energies[index])
        updates, state = opt.update({k: jnp.asarray(v) for k, v in grads.items()}, state, weights)
        weights = optax.apply_updates(weights, updates)
        rows.append((step, loss, loss, np.nan))
        if step == 1:
            first = time.perf_counter() - t0
            message = (f"{settings.label}: {first:.1f} s per step ({batch} configurations, parameter shift); "
                       f"{s.steps} steps will take about {first * s.steps / 60:.1f} min")
            log.info(message)
    seconds = time.perf_counter() - t0
    metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    return LoopResult({k: np.asarray(v) for k, v in weights.items()}, metrics, seconds / max(s.steps, 1), seconds)
