"""What a model costs the simulator before it is compiled: the compile size and the peak memory.

A model too deep to compile (`model.blocks=1000` traces four thousand gates: tens of minutes and
gigabytes of XLA) or a batch beyond the machine's memory is refused with one line naming the
estimate and the option that lowers it, instead of a hang or an out-of-memory kill halfway through.

Compile size is the number of gates the simulator traces into one XLA program (`traced_gates`):
each block repetition's gates once (the simulator builds a block's unitary for every layer at
once), plus the encoding gates of every layer it unrolls: one layer on the small-state path, which
loops over the layers with `lax.scan`, all layers + 1 (and each layer's fused products) otherwise.

Peak memory (`estimate`) = BASE_BYTES (interpreter, JAX, Qiskit) + the compilation (COMPILE_BYTES
+ COMPILE_BYTES_PER_GATE per traced gate, twice both with forces in the loss, whose mixed second
derivatives double the program) + the state vectors that reverse mode keeps (2^n amplitudes each,
`states_kept`) + `DATA_BYTES_PER_ATOM` per atom of every configuration. On the simulator's general path
the states kept follow the layout the cost model picks for the batch (`statevector.kept_states`), and a
batch whose states would pass `statevector.MICRO_BATCH_BYTES` runs in micro-batches, each recomputed in
the backward pass, so only one micro-batch's states count. Elsewhere (the small-state path, the generic
VQLM) they are `STATES_KEPT_PER_LAYER_QUBIT` x (layers + 1) x n x batch. Calibrated on one compile and one Adam step
(peak RSS by `resource.getrusage`, 2 cores, single precision unless stated): LiH B=2 / 60 / 150
(traced 12 / 244 / 604): compile 117 / 444 / 850 MB; water dimer D=4 batch 32: compile 267 MB
(energy) / 417 MB (forces); D=8 forces: 475 MB; state memory at batch 256, D=4: 34 state vectors
(energy) / 78 (forces), at D=8, batch 64, forces 155, double precision D=4 78: each below the
estimate, which errs on the safe side by up to 2x.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from siqml_cli.errors import SiqmlError

#: the most gates one compiled program may trace: LiH at this size compiles for minutes in ~3 GB
MAX_TRACED_GATES = 2000
BASE_BYTES = 400 * 2**20
COMPILE_BYTES = 150 * 2**20
COMPILE_BYTES_PER_GATE = 1.3 * 2**20
#: state vectors kept for the backward pass per layer and qubit: energy loss, energy + force loss
STATES_KEPT_PER_LAYER_QUBIT = {False: 1.0, True: 2.0}
AMPLITUDE_BYTES = {"double": 16, "single": 8}
#: what a step holds per configuration and atom besides the states, however it is micro-batched: positions,
#: forces, predicted forces and their gradients, in double precision
DATA_BYTES_PER_ATOM = 8 * 3 * 8
#: the batch whose layout `traced_gates` counts: the compile size needs no batch, and the number of
#: fused blocks barely depends on it
NOMINAL_BATCH = 32


@dataclass(frozen=True)
class Estimate:
    """What one compiled training or prediction step of a model costs."""

    traced_gates: int
    peak_bytes: int
    compile_bytes: int
    state_bytes: int  # the state vectors kept for reverse mode, and each configuration's data


def traced_gates(spec) -> int:
    """The compile size: gates traced into one XLA program (see the module's docstring)."""
    from siqml_cli.models.generic import GenericSpec
    from siqml_cli.models.twin import TwinSpec

    if isinstance(spec, TwinSpec):  # a classical network: no gates
        return 0
    if isinstance(spec, GenericSpec):  # every block's RY, RZ and CNOT ring; the encoding of every layer unrolled
        return spec.blocks * 3 * spec.n_qubits + (spec.layers + 1) * spec.n_qubits
    from siqml_cli.models.spec import orbit_components
    from siqml_cli.simulate.statevector import SMALL_STATE_QUBITS, choose_layout

    per_block = sum(len(orbit_components(c.pairs)) for c in spec.couplings)
    encoding = len(spec.encoding)
    if spec.n_qubits <= SMALL_STATE_QUBITS:
        return spec.blocks * per_block + encoding
    blocks = len(choose_layout(spec, NOMINAL_BATCH, "double").fused)
    return spec.blocks * per_block + (spec.layers + 1) * encoding + spec.layers * blocks


def estimate(spec, batch: int, precision: str, force_loss: bool) -> Estimate:
    """Peak memory of compiling and running one step on `batch` configurations (see the module's docstring)."""
    gates = traced_gates(spec)
    doubled = 2 if force_loss else 1
    compile_bytes = int(doubled * (COMPILE_BYTES + COMPILE_BYTES_PER_GATE * gates))
    state_bytes = int(2**spec.n_qubits * AMPLITUDE_BYTES[precision] * states_kept(spec, batch, precision, force_loss)
                      + DATA_BYTES_PER_ATOM * len(spec.species) * max(int(batch), 1))
    return Estimate(gates, BASE_BYTES + compile_bytes + state_bytes, compile_bytes, state_bytes)


def states_kept(spec, batch: int, precision: str, force_loss: bool) -> float:
    """State vectors of 2^n amplitudes that reverse mode keeps at once for `batch` configurations (see the
    module's docstring)."""
    from siqml_cli.models.generic import GenericSpec
    from siqml_cli.models.twin import TwinSpec
    from siqml_cli.simulate.statevector import SMALL_STATE_QUBITS, choose_layout, kept_states, micro_batch

    if isinstance(spec, TwinSpec):  # a classical network keeps no state vectors
        return 0.0
    batch = max(int(batch), 1)
    if isinstance(spec, GenericSpec) or spec.n_qubits <= SMALL_STATE_QUBITS:
        return STATES_KEPT_PER_LAYER_QUBIT[bool(force_loss)] * (spec.layers + 1) * spec.n_qubits * batch
    layout = choose_layout(spec, batch, precision)
    return kept_states(spec, layout, force_loss) * micro_batch(spec, layout, batch, precision, force_loss)


def available_bytes() -> int:
    """Memory this process may still use: MemAvailable, or the cgroup's limit less its use when lower."""
    try:
        import psutil

        available = int(psutil.virtual_memory().available)
    except ImportError:
        available = _meminfo_available()
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            available = min(available, int(limit) - int((cgroup / "memory.current").read_text()))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit to respect
    return available


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_compile_size(spec) -> int:
    """The compile size, or a SiqmlError when it exceeds MAX_TRACED_GATES; needs no batch."""
    gates = traced_gates(spec)
    if gates > MAX_TRACED_GATES:
        raise SiqmlError(f"model.layers={spec.layers} model.blocks={spec.blocks} traces {gates} gates into one "
                         f"compiled program, beyond the limit of {MAX_TRACED_GATES} (it would compile for tens of "
                         f"minutes in about {_gib(COMPILE_BYTES + COMPILE_BYTES_PER_GATE * gates)}); lower "
                         "model.blocks or model.layers")
    return gates


def check_resources(spec, batch: int, precision: str, force_loss: bool,
                    batch_option: str | None = "train.batch_size",
                    precision_option: str | None = "train.precision=single") -> Estimate:
    """The estimate for one step, or a one-line SiqmlError when it exceeds the compile-size limit or the
    memory available; `batch_option` and `precision_option` name the settings that lower it (for the
    message; None where no setting does, e.g. predictions, which always run one configuration chunk in
    double precision)."""
    check_compile_size(spec)
    found = estimate(spec, batch, precision, force_loss)
    available = available_bytes()
    if found.peak_bytes > available:
        lower = [f"{batch_option} (now {batch})"] if batch_option else []
        if precision == "double" and precision_option:
            lower.append(precision_option)
        lower.append("model.layers" if found.state_bytes >= found.compile_bytes else "model.blocks or model.layers")
        raise SiqmlError(f"this needs about {_gib(found.peak_bytes)} ({spec.n_qubits}-qubit states x batch {batch}"
                         f"{' with forces' if force_loss else ''}: {_gib(found.state_bytes)}; compiling "
                         f"{found.traced_gates} gates: {_gib(found.compile_bytes)}), more than the "
                         f"{_gib(available)} available; lower "
                         + (f"{', '.join(lower[:-1])} or {lower[-1]}" if len(lower) > 1 else lower[0]))
    return found


def batch_size(requested: int | None, n_configurations: int) -> int:
    """The batch one step computes: the requested mini-batch, or the whole set (full batch)."""
    return n_configurations if requested is None else min(int(requested), n_configurations)


__all__ = ["MAX_TRACED_GATES", "Estimate", "available_bytes", "batch_size", "check_compile_size",
           "check_resources", "estimate", "states_kept", "traced_gates"]
