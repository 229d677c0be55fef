#!/usr/bin/env bash
# Noise sweep (the paper's Fig. 5): train one molecule at several noise levels and seeds, then summarise.
#   scripts/sweep_noise.sh MOLECULE "LEVELS" "SEEDS" [LAUNCHER] [extra overrides ...]
#   scripts/sweep_noise.sh lih "0 0.001 0.01 0.1" "0 1 2"                      # one job after another
#   scripts/sweep_noise.sh h2o "0 0.005 0.01" "0 1 2" joblib hydra.launcher.n_jobs=2
#   scripts/sweep_noise.sh h2o "0 0.005 0.01" "0 1 2" slurm hydra.launcher.partition=cpu
# LEVELS (eV) and SEEDS are space- or comma-separated lists; LAUNCHER is basic (default), joblib,
# submitit_local or slurm. Results: results/multirun/<date>_<time>/; then `siqml report` on that folder.
set -euo pipefail

usage() {
    echo "usage: $(basename "$0") MOLECULE \"LEVELS\" \"SEEDS\" [LAUNCHER] [extra overrides ...]" >&2
    echo "  e.g. $(basename "$0") lih \"0 0.001 0.01 0.1\" \"0 1 2\" joblib hydra.launcher.n_jobs=2" >&2
    echo "  MOLECULE: lih or h2o; LEVELS: noise sigma in eV; LAUNCHER: basic (default), joblib, submitit_local, slurm" >&2
    exit 2
}

[[ $# -ge 3 ]] || usage
molecule=$1 levels=$2 seeds=$3 launcher=${4:-basic}
shift $(( $# >= 4 ? 4 : 3 ))

as_list() {  # "0 0.01, 0.1" -> 0,0.01,0.1; fails on anything but numbers (SEEDS: integers)
    local pattern=$2 items
    items=$(echo "$1" | tr ', ' '\n\n' | sed '/^$/d' | paste -sd, -)
    [[ -n $items ]] || return 1
    local item
    for item in ${items//,/ }; do [[ $item =~ $pattern ]] || return 1; done
    echo "$items"
}
sigma=$(as_list "$levels" '^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$') || { echo "bad LEVELS '$levels': give numbers >= 0 (eV)" >&2; usage; }
seed=$(as_list "$seeds" '^[0-9]+$') || { echo "bad SEEDS '$seeds': give integers >= 0" >&2; usage; }
[[ $molecule =~ ^[a-z0-9_]+$ ]] || { echo "bad MOLECULE '$molecule'" >&2; usage; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
siqml=${SIQML:-$(command -v siqml || echo "$here/.venv/bin/siqml")}
exec "$siqml" train -m "+molecule=$molecule" "noise.sigma=$sigma" "seed=$seed" "hydra/launcher=$launcher" "$@"
