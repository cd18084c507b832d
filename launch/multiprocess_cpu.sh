#!/usr/bin/env bash
# N local processes of one multi-host run on this machine's CPU (gloo collectives).
#
#   launch/multiprocess_cpu.sh [--dry-run] N CONFIG [train flags...]
#
# Each process sees DEVICES_PER_PROCESS fake CPU devices (default 2), so the global mesh
# has N x DEVICES_PER_PROCESS devices, exactly as N TPU hosts would. Process 0 streams its
# output here; process i>0 writes WORKDIR/logs/process_i.log. Ctrl-C (or SIGTERM) is
# forwarded to every process: they save a checkpoint at the next step and exit, and the
# same command resumes. Exits non-zero if any process fails.
#
# Environment: WORKDIR (default /tmp/jaxrl_multiprocess; a --workdir=... flag wins),
# DEVICES_PER_PROCESS (2), PORT (a free port), PYTHON (.venv/bin/python if present).
set -euo pipefail

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then dry_run=1; shift; fi
if [[ $# -lt 2 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [--dry-run] N CONFIG [train flags...]   e.g. $0 2 configs/quickstart.py:runlocal" >&2
  exit 2
fi
num_processes=$1
config=$2
shift 2

cd "$(dirname "$0")/.."
python=${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}
devices=${DEVICES_PER_PROCESS:-2}
workdir=${WORKDIR:-/tmp/jaxrl_multiprocess}
for arg in "$@"; do
  if [[ "$arg" == --workdir=* ]]; then workdir=${arg#--workdir=}; fi
done
port=${PORT:-$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}

commands=()
for ((i = 0; i < num_processes; i++)); do
  commands+=("JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=$devices $python -m jaxrl_verify.train --config=$config --workdir=$workdir --coordinator_address=127.0.0.1:$port --num_processes=$num_processes --process_id=$i $*")
done
if ((dry_run)); then
  printf '%s\n' "${commands[@]}"
  exit 0
fi

mkdir -p "$workdir/logs"
pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
}
trap stop INT TERM
for ((i = 0; i < num_processes; i++)); do
  env JAX_PLATFORMS=cpu XLA_FLAGS="--xla_force_host_platform_device_count=$devices" \
    "$python" -m jaxrl_verify.train --config="$config" --workdir="$workdir" \
    --coordinator_address="127.0.0.1:$port" --num_processes="$num_processes" --process_id="$i" \
    "$@" >"$([[ $i == 0 ]] && echo /dev/stdout || echo "$workdir/logs/process_$i.log")" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  # `wait` returns early when a trapped signal arrives; wait again for the real exit.
  while true; do
    if wait "${pids[$i]}"; then rc=0; else rc=$?; fi
    kill -0 "${pids[$i]}" 2>/dev/null || break
  done
  if ((rc != 0)); then
    echo "process $i exited with status $rc (log: $([[ $i == 0 ]] && echo stdout || echo "$workdir/logs/process_$i.log"))" >&2
    status=$rc
  fi
done
exit $status
