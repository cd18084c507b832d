#!/usr/bin/env bash
# One process on this machine (CPU, one GPU, or a single-host TPU VM).
#
#   launch/local.sh [--dry-run] CONFIG WORKDIR [train flags...]
#   e.g. launch/local.sh configs/quickstart.py:runlocal /tmp/qs --config.total_steps=8
#
# The run resumes from WORKDIR by itself; Ctrl-C saves a checkpoint at the next step.
set -euo pipefail

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then dry_run=1; shift; fi
if [[ $# -lt 2 ]]; then
  echo "usage: $0 [--dry-run] CONFIG WORKDIR [train flags...]" >&2
  exit 2
fi
config=$1
workdir=$2
shift 2
cd "$(dirname "$0")/.."
python=${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}
cmd=("$python" -m jaxrl_verify.train --config="$config" --workdir="$workdir" "$@")
if ((dry_run)); then
  echo "${cmd[*]}"
  exit 0
fi
exec "${cmd[@]}"
