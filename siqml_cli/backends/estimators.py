"""Where the circuits run: the target to transpile for and the Estimator V2 primitive, from the settings.

- `aer`, exact: qiskit-aer's `EstimatorV2` with precision 0 (exact expectation values; a density
  matrix when there is noise, so noisy values are exact too, not one noise trajectory).
- `aer` with shots: Qiskit's `BackendEstimatorV2` on an `AerSimulator`. It samples every measured
  basis `shots` times as hardware does; Aer's own `EstimatorV2` would only add Gaussian noise of a
  chosen width to the exact value.
- `fake` and `ibm`, and `aer` with shots and error mitigation: qiskit-ibm-runtime's client-side
  Estimator (`executor_estimator.Estimator`; the server-side `EstimatorV2` is deprecated since 0.50).
  Its mitigation runs on this machine, so it applies in local mode too; an `IBMBackend` is the real
  service, anything else (a fake device's qubits, an `AerSimulator` with a noise model) is local mode.
  A fake device runs on the qubits its ISA circuit touches (`siqml_cli.backends.local`), so today's
  133-156 qubit devices can be rehearsed.

Credentials come only from the saved account or QISKIT_IBM_TOKEN / QISKIT_IBM_INSTANCE, and are
never stored or printed here.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

from siqml_cli.backends.settings import BackendSettings, Noise
from siqml_cli.config import runtime_options
from siqml_cli.errors import SiqmlError

IBM_CHANNEL = "ibm_quantum_platform"


@dataclass
class Target:
    """What to transpile for (`backend`, or `basis_gates` for a bare noise model) and, for Aer, the noise."""

    backend: object | None
    basis_gates: list[str] | None = None
    noise_model: object | None = None

    @property
    def num_qubits(self) -> int | None:
        return getattr(self.backend, "num_qubits", None)

    @property
    def name(self) -> str:
        return getattr(self.backend, "name", "aer_simulator")


def fake_device(name: str):
    """qiskit-ibm-runtime's fake device `name`. Making the provider builds every fake device, and some warn
    that their properties are not typical of the hardware: not news to a user who asked for another device
    (and printed before our own error when the name is wrong), so those warnings are filtered here."""
    from qiskit.providers.exceptions import QiskitBackendNotFoundError
    from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Properties of fake_\w+ are not intended", category=UserWarning)
        provider = FakeProviderForBackendV2()
        try:
            return provider.backend(name)
        except QiskitBackendNotFoundError:
            names = sorted(b.name for b in provider.backends())
    close = [n for n in names if n.split("_")[-1][:3] == name.split("_")[-1][:3]] or names[:6]
    raise SiqmlError(f"unknown fake device '{name}'; e.g. {', '.join(close)} "
                     "(all: qiskit_ibm_runtime.fake_provider.FakeProviderForBackendV2().backends())")


def aer_noise_model(noise: Noise):
    """Depolarizing errors on the physical 1- and 2-qubit gates and symmetric readout flips, or a device's model."""
    from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error

    if noise.device:
        return NoiseModel.from_backend(fake_device(noise.device))
    model = NoiseModel(basis_gates=["rz", "sx", "x", "cx"])
    if noise.depolarizing_1q > 0:
        model.add_all_qubit_quantum_error(depolarizing_error(noise.depolarizing_1q, 1), ["sx", "x"])
    if noise.depolarizing_2q > 0:
        model.add_all_qubit_quantum_error(depolarizing_error(noise.depolarizing_2q, 2), ["cx"])
    if noise.readout > 0:
        p = noise.readout
        model.add_all_qubit_readout_error(ReadoutError([[1 - p, p], [p, 1 - p]]))
    return model


def ibm_service():
    """The IBM Quantum service from QISKIT_IBM_TOKEN (+ QISKIT_IBM_INSTANCE) or the saved account."""
    from qiskit_ibm_runtime import QiskitRuntimeService

    token = os.environ.get("QISKIT_IBM_TOKEN")
    try:
        if token:
            return QiskitRuntimeService(channel=IBM_CHANNEL, token=token,
                                        instance=os.environ.get("QISKIT_IBM_INSTANCE") or None)
        return QiskitRuntimeService()
    except Exception as exc:  # AccountNotFoundError, IBMNotAuthorizedError, connection errors
        if not token and type(exc).__name__ == "AccountNotFoundError":
            raise SiqmlError("no IBM Quantum credentials: set QISKIT_IBM_TOKEN (and QISKIT_IBM_INSTANCE), or save an "
                             "account once with QiskitRuntimeService.save_account(...)") from None
        raise SiqmlError(f"cannot open the IBM Quantum service ({type(exc).__name__}); check the network, "
                         "QISKIT_IBM_TOKEN / QISKIT_IBM_INSTANCE or the saved account") from None


def ibm_device(service, name: str):
    try:
        return service.backend(name)
    except Exception as exc:  # QiskitBackendNotFoundError and service errors
        raise SiqmlError(f"IBM Quantum backend '{name}' is not available to this account ({type(exc).__name__}); "
                         "list yours with QiskitRuntimeService().backends()") from None


def make_target(settings: BackendSettings) -> Target:
    if settings.kind == "aer":
        from qiskit_aer import AerSimulator

        if not settings.noise.active:
            return Target(AerSimulator())
        model = aer_noise_model(settings.noise)
        if settings.noise.device:  # the device's coupling map and basis, so its per-qubit errors apply
            return Target(fake_device(settings.noise.device), noise_model=model)
        return Target(None, basis_gates=list(model.basis_gates), noise_model=model)
    if settings.kind == "fake":
        return Target(fake_device(settings.name))
    if settings.kind == "ibm":
        return Target(ibm_device(ibm_service(), settings.name))
    raise SiqmlError("the fast simulator (backend=statevector) needs no Qiskit target")


@dataclass
class Executable:
    """What the Estimator runs: the ISA circuit and observable, and the backend it runs them on (None for
    Aer's own primitives); `qubits`, the device qubits simulated, when a device was cut down to them."""

    circuit: object
    observable: object
    backend: object | None
    qubits: list[int] | None = None


def executable(settings: BackendSettings, target: Target, circuit, observable) -> Executable:
    """The ISA circuit where it runs: on the device (ibm); on the qubits it touches of a fake device or of a
    device's noise model (`aer` with `noise.device`), simulated alone; on an `AerSimulator` with the noise
    model (aer through the runtime); or as it is for Aer's own primitives."""
    if settings.kind == "ibm":
        return Executable(circuit, observable, target.backend)
    if settings.kind == "fake" or settings.noise.device:
        from siqml_cli.backends.local import compact

        small = compact(target.backend, circuit, observable, settings.seed)
        return Executable(small.circuit, small.observable, small.simulator, small.qubits)
    if not settings.runtime:
        return Executable(circuit, observable, None)
    from qiskit_aer import AerSimulator

    return Executable(circuit, observable, AerSimulator(noise_model=target.noise_model, seed_simulator=settings.seed))


def make_estimator(settings: BackendSettings, target: Target, mode=None):
    """The Estimator V2 for `target`. `mode` is what it runs on: through the runtime a `Batch` or the
    `Executable`'s backend, for Aer's primitives the `Executable`'s simulator (a device's qubits in use);
    without one, the device itself (a fake device or Aer simulator at full width)."""
    if not settings.runtime:
        if settings.shots is None:
            from qiskit_aer.primitives import EstimatorV2

            backend_options = {"seed_simulator": settings.seed}
            noise_model = target.noise_model if mode is None else mode.options.noise_model
            if noise_model is not None:
                backend_options.update(noise_model=noise_model, method="density_matrix")
            return EstimatorV2(options={"default_precision": 0.0, "backend_options": backend_options})
        from qiskit.primitives import BackendEstimatorV2
        from qiskit_aer import AerSimulator

        if mode is not None:
            simulator = mode
        elif settings.noise.device:  # the device's qubit count too: the ISA circuit spans all its qubits
            simulator = AerSimulator.from_backend(target.backend, seed_simulator=settings.seed)
        else:
            simulator = AerSimulator(noise_model=target.noise_model, seed_simulator=settings.seed)
        # BackendEstimatorV2 runs ceil(1/precision^2) shots; this precision gives exactly `shots`
        return BackendEstimatorV2(backend=simulator, options={"default_precision": (settings.shots - 0.5) ** -0.5,
                                                              "seed_simulator": settings.seed})
    from qiskit_ibm_runtime.executor_estimator import Estimator

    if mode is None:
        mode = target.backend
        if settings.kind == "aer":
            from qiskit_aer import AerSimulator

            mode = (AerSimulator.from_backend(target.backend, seed_simulator=settings.seed) if settings.noise.device
                    else AerSimulator(noise_model=target.noise_model, seed_simulator=settings.seed))
    return Estimator(mode=mode, options=runtime_options(settings))


def mitigation_record(settings: BackendSettings) -> dict:
    """What the results say about error mitigation: whether it applied and, through the runtime, every option
    of its Estimator as the runtime finalized them (the resilience level's defaults filled in)."""
    if not settings.runtime:
        return {"applied": False, "note": "Aer's own primitives have no error mitigation; give backend.shots and "
                                          "mitigation keys to run through the runtime's Estimator in local mode"}
    from qiskit_ibm_runtime.executor_estimator.finalize_options import finalize_estimator_options

    finalized = finalize_estimator_options(runtime_options(settings))
    return {"applied": True, "options": finalized.model_dump(mode="json"),
            "note": "qiskit-ibm-runtime client-side Estimator: mitigation runs on this machine (local mode too)"}

