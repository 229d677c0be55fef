"""`siqml submit` and `siqml retrieve`: hardware runs that outlive the command that started them.

`submit` transpiles once, writes everything needed to read the answers later into
`<run>/hardware/<date>_<time>_<backend>/` (settings, ISA circuit as QPY, configurations, their
symmetric copies with `backend.symmetrize`, parameter arrays), then sends one job per
`configurations_per_job` configurations inside a runtime `Batch` and records the batch id and each
job id as soon as it has them; with `backend.dry_run=true` it counts what it would send and stops.
`retrieve` asks for each job not yet fetched, stores each finished job's values on its own (so it
resumes and never fetches twice), and writes the tables once every job is in. A failed or
cancelled job is reported with its id and error, and nothing is marked complete.

qiskit-ibm-runtime's local mode (fake devices) runs jobs inside the submitting process and keeps
no record after it ends; `submit` therefore waits for local jobs and stores their outcome in
`local_jobs/`, which `retrieve` reads in place of the service. Everything else is the same path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from qiskit import qpy

from siqml_cli.backends.estimators import ibm_service, make_estimator
from siqml_cli.backends.forcefield import BackendForceField, chunks, plan_for, print_cost, to_prediction
from siqml_cli.backends.settings import backend_settings
from siqml_cli.backends.symmetrize import SymmetryCopies
from siqml_cli.data import Dataset
from siqml_cli.data.io import atomic_path, write_text_atomic
from siqml_cli.errors import SiqmlError
from siqml_cli.runs import RunFolder, now

HARDWARE_DIR = "hardware"
SUBMISSION_FILE = "submission.json"
JOBS_FILE = "jobs.json"
LOCAL_JOBS_DIR = "local_jobs"
RESULTS_DIR = "results"
DONE, FAILED = "DONE", ("ERROR", "CANCELLED")


def _write_json(path: Path, record) -> None:
    write_text_atomic(path, json.dumps(record, indent=2))


def _save_npz(path: Path, **arrays) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


# --------------------------------------------------------------------------- submit


def submit_command(cfg: DictConfig) -> None:
    from siqml_cli.config import parse_command
    from siqml_cli.evaluate import evaluation_data

    command = parse_command("submit", cfg)
    settings = command.backend
    if settings.kind not in ("fake", "ibm"):
        raise SiqmlError(f"siqml submit sends jobs to IBM Quantum (backend=ibm) or its local mode (backend=fake); "
                         f"for backend={settings.kind} use `siqml evaluate run=... backend={settings.kind}`")
    run = Path(command.run)
    forcefield = RunFolder(run).load_forcefield()
    data = evaluation_data(command.data, run, forcefield.spec.name)
    on_backend = BackendForceField(forcefield, settings)
    if settings.dry_run:
        print_cost(on_backend, len(data))
        return
    if line := on_backend.trotter_line():
        print(line)
    folder = RunFolder(run).output_folder(HARDWARE_DIR, suffix=f"_{settings.label}", make=False)
    folder.mkdir(parents=True, exist_ok=False)
    copies = on_backend.copies(len(data))
    if copies is not None:
        copies.save(folder)
    pubs = on_backend.pubs(data.positions, copies)
    with atomic_path(folder / "isa_circuit.qpy") as tmp, open(tmp, "wb") as fh:
        qpy.dump(on_backend.executable.circuit, fh)  # what runs: on a fake device, the qubits it touches
    _save_npz(folder / "configurations.npz", positions=data.positions,
              **({"energies": data.energies} if data.energies is not None else {}),
              **({"forces": data.forces} if data.forces is not None else {}))
    _save_npz(folder / "parameters.npz", **{f"job_{i}": pub[2] for i, pub in enumerate(pubs)})
    _write_json(folder / SUBMISSION_FILE, {
        **on_backend.record(), "run": str(run), "data": str(data.source), "species": list(data.species),
        "n": len(data),
        "observable": [[label, float(np.real(c))] for label, c in on_backend.executable.observable.to_list()],
        "status": "submitting", "submitted": now()})
    jobs = [{"index": i, "configurations": [part.start, part.stop], "job_id": None, "status": "not submitted"}
            for i, part in enumerate(chunks(len(data), settings.configurations_per_job))]
    _write_json(folder / JOBS_FILE, jobs)
    local = settings.kind == "fake"
    submitted, batch_id = send_in_batch(on_backend, settings, pubs, jobs, folder, local)
    _update_status(folder, "submitted", batch_id=batch_id)
    print(f"submitted {len(jobs)} job(s) to {on_backend.target.name}: {', '.join(j['job_id'] for j in jobs)}")
    if local:
        for job in submitted:
            store_local_outcome(folder, job)
    print(f"records: {folder}\nfetch the results with: siqml retrieve run={run}")


def send_in_batch(on_backend: BackendForceField, settings, pubs, jobs: list[dict], folder: Path,
                  local: bool) -> tuple[list, str | None]:
    """One job per PUB in a `Batch`; each id is written to jobs.json the moment the service returns it.
    The batch's id too (None in local mode, which has no batches on a service)."""
    from qiskit_ibm_runtime import Batch

    submitted = []
    with Batch(backend=on_backend.executable.backend) as batch:
        estimator = make_estimator(settings, on_backend.target, mode=batch)
        for job_record, pub in zip(jobs, pubs):
            job = estimator.run([pub])
            job_record.update(job_id=job.job_id(), status="submitted", submitted=now())
            _write_json(folder / JOBS_FILE, jobs)
            submitted.append(job)
    return submitted, batch.session_id


def store_local_outcome(folder: Path, job) -> None:
    """Local mode: wait for the in-process job and keep its outcome where `retrieve` will look for it."""
    record = {"job_id": job.job_id(), "backend": job.backend().name}
    try:
        result = job.result()
    except Exception as exc:  # the simulation itself failed: the job's error, as the service would report it
        record.update(status="ERROR", error=f"{type(exc).__name__}: {exc}")
    else:
        evs, stds = values_of(result)
        record.update(status=DONE, evs=evs.tolist(), stds=stds.tolist())
    (folder / LOCAL_JOBS_DIR).mkdir(exist_ok=True)
    _write_json(folder / LOCAL_JOBS_DIR / f"{job.job_id()}.json", record)


def values_of(result) -> tuple[np.ndarray, np.ndarray]:
    """Expectation values and standard errors of a one-PUB job."""
    return np.asarray(result[0].data.evs, dtype=float), np.asarray(result[0].data.stds, dtype=float)


def _update_status(folder: Path, status: str, **fields) -> None:
    record = json.loads((folder / SUBMISSION_FILE).read_text())
    record.update(status=status, updated=now(), **fields)
    _write_json(folder / SUBMISSION_FILE, record)


# --------------------------------------------------------------------------- retrieve


class LocalJobs:
    """The outcomes `submit` stored for local-mode jobs, answered the way the service answers."""

    def __init__(self, folder: Path):
        self.folder = folder / LOCAL_JOBS_DIR

    def outcome(self, job_id: str) -> tuple[str, tuple | None, str | None]:
        path = self.folder / f"{job_id}.json"
        if not path.is_file():
            return "RUNNING", None, None
        record = json.loads(path.read_text())
        if record["status"] != DONE:
            return record["status"], None, record.get("error")
        return DONE, (np.asarray(record["evs"], dtype=float), np.asarray(record["stds"], dtype=float)), None


class ServiceJobs:
    """Jobs on IBM Quantum, looked up by id."""

    def __init__(self):
        self.service = ibm_service()

    def outcome(self, job_id: str) -> tuple[str, tuple | None, str | None]:
        try:
            job = self.service.job(job_id)
            status = str(job.status())
        except Exception as exc:  # unknown id, service errors
            raise SiqmlError(f"cannot look up job {job_id} ({type(exc).__name__}: {exc})") from None
        if status == DONE:
            return DONE, values_of(job.result()), None
        if status in FAILED:
            return status, None, job.error_message() or status.lower()
        return status, None, None


def submissions(run: Path) -> list[Path]:
    folder = run / HARDWARE_DIR
    found = sorted(p.parent for p in folder.glob(f"*/{SUBMISSION_FILE}")) if folder.is_dir() else []
    if not found:
        raise SiqmlError(f"{run} has no submitted jobs ({HARDWARE_DIR}/); send some first with "
                         f"`siqml submit run={run} backend=ibm backend.name=...`")
    return found


def retrieve_command(cfg: DictConfig) -> None:
    from siqml_cli.config import parse_command

    command = parse_command("retrieve", cfg)
    run = Path(command.run)
    chosen = [Path(command.submission)] if command.submission else submissions(run)
    for folder in chosen:
        retrieve_submission(run, folder)


def retrieve_submission(run: Path, folder: Path) -> None:
    record = json.loads((folder / SUBMISSION_FILE).read_text())
    if record["status"] == "complete":
        print(f"{folder.name}: already complete ({folder})")
        return
    jobs = json.loads((folder / JOBS_FILE).read_text())
    unsent = [j["index"] for j in jobs if not j["job_id"]]
    if unsent:
        _update_status(folder, "failed", error=f"jobs {unsent} were never submitted")
        raise SiqmlError(f"{folder.name}: jobs {unsent} were never submitted (submit was interrupted); "
                         f"submit again with `siqml submit run={run} ...`")
    source = LocalJobs(folder) if record["settings"]["kind"] == "fake" else ServiceJobs()
    (folder / RESULTS_DIR).mkdir(exist_ok=True)
    for job in jobs:
        path = folder / RESULTS_DIR / f"{job['job_id']}.npz"
        if path.exists():
            continue
        status, values, error = source.outcome(job["job_id"])
        job.update(status=status, checked=now())
        if status == DONE:
            _save_npz(path, evs=values[0], stds=values[1])
            job["status"] = "retrieved"
        elif status in FAILED:
            job["error"] = error
            _write_json(folder / JOBS_FILE, jobs)
            _update_status(folder, "failed", error=f"job {job['job_id']} {status.lower()}: {error}")
            raise SiqmlError(f"job {job['job_id']} on {record['device']} ended {status}: {error}; "
                             f"nothing was marked complete. Submit again: siqml submit run={run} ...")
        _write_json(folder / JOBS_FILE, jobs)
    pending = [j["job_id"] for j in jobs if not (folder / RESULTS_DIR / f"{j['job_id']}.npz").exists()]
    if pending:
        _update_status(folder, "pending")
        print(f"{folder.name}: {len(jobs) - len(pending)} of {len(jobs)} jobs finished; still waiting for "
              f"{', '.join(pending)}. Run `siqml retrieve run={run}` again later.")
        return
    write_tables(run, folder, record, jobs)


def write_tables(run: Path, folder: Path, record: dict, jobs: list[dict]) -> None:
    from siqml_cli.report.evaluation import write_backend_evaluation

    forcefield = RunFolder(run).load_forcefield()
    settings = backend_settings(record["settings"])
    with np.load(folder / "configurations.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    data = Dataset(tuple(record["species"]), arrays["positions"], arrays.get("energies"), arrays.get("forces"),
                   source=record["data"])
    evs, stds = [], []
    for job in sorted(jobs, key=lambda j: j["index"]):
        with np.load(folder / RESULTS_DIR / f"{job['job_id']}.npz") as npz:
            evs.append(npz["evs"])
            stds.append(npz["stds"])
    plan = plan_for(forcefield, settings)
    copies = SymmetryCopies.load(folder) if settings.symmetrize > 1 else None
    prediction = to_prediction(forcefield, plan, data.positions, np.concatenate(evs), np.concatenate(stds), copies)
    keep = {k: record[k] for k in ("backend", "device", "settings", "isa", "transpile_seconds", "simulated_qubits",
                                   "rows_per_configuration", "gate_angles", "mitigation", "symmetrize")}
    keep["trotter_error"] = record.get("trotter_error")  # absent from submissions made before the key existed
    write_backend_evaluation(folder, run, forcefield, data, prediction,
                             {**keep, "batch_id": record.get("batch_id"), "job_ids": [j["job_id"] for j in jobs],
                              "retrieved": now()})
    _update_status(folder, "complete")
