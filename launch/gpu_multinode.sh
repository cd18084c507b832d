#!/usr/bin/env bash
# Multi-node GPU training: one process per node, every local GPU visible to it.
#
#   Slurm (inside an allocation, e.g. from sbatch; one task per node):
#     launch/gpu_multinode.sh [--dry-run] slurm CONFIG WORKDIR [train flags...]
#   Plain ssh to a host list (the repository and its venv at the same path on each host):
#     HOSTS=node1,node2 launch/gpu_multinode.sh [--dry-run] ssh CONFIG WORKDIR [train flags...]
#
# Process i runs `python -m jaxrl_verify.train ... --coordinator_address=HOST0:PORT
# --num_processes=N --process_id=i`; HOST0 is the first node. WORKDIR must be shared by
# all nodes (NFS, or gs:// for orbax). Environment: PORT (default 12355), PYTHON (default
# .venv/bin/python under the repository), REPO (ssh mode: its path on the hosts; default
# this checkout's path), SRUN_ARGS (extra srun flags).
#
# The coordinator is passed explicitly rather than left to JAX's Slurm auto-detection,
# which assumes one process per GPU and would hide all but one GPU of each node.
set -euo pipefail

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then dry_run=1; shift; fi
if [[ $# -lt 3 || ! "$1" =~ ^(slurm|ssh)$ ]]; then
  echo "usage: $0 [--dry-run] slurm|ssh CONFIG WORKDIR [train flags...]" >&2
  exit 2
fi
mode=$1
config=$2
workdir=$3
shift 3
repo=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
python=${PYTHON:-$repo/.venv/bin/python}
port=${PORT:-12355}
extra=""
if (($# > 0)); then extra=$(printf ' %q' "$@"); fi

run() {  # The last argument is a shell command line: shown quoted in a dry run.
  if ((dry_run)); then
    printf '%s ' "${@:1:$#-1}"
    printf "'%s'\n" "${@: -1}"
  else
    "$@"
  fi
}

if [[ $mode == slurm ]]; then
  if [[ -z "${SLURM_JOB_NODELIST:-}" && $dry_run == 0 ]]; then
    echo "slurm mode runs inside an allocation: sbatch/salloc --nodes=N --ntasks-per-node=1 first." >&2
    exit 2
  fi
  nodes=${SLURM_JOB_NUM_NODES:-2}
  # Evaluated on each task: the first node of the allocation is the coordinator.
  inner="cd $repo && $python -m jaxrl_verify.train --config=$config --workdir=$workdir \
--coordinator_address=\$(scontrol show hostnames \"\$SLURM_JOB_NODELIST\" | head -n1):$port \
--num_processes=\$SLURM_NTASKS --process_id=\$SLURM_PROCID$extra"
  # shellcheck disable=SC2086
  run srun --nodes="$nodes" --ntasks-per-node=1 --kill-on-bad-exit=1 ${SRUN_ARGS:-} bash -c "$inner"
  exit $?
fi

IFS=, read -r -a hosts <<<"${HOSTS:?set HOSTS=host0,host1,... (host0 is the coordinator)}"
pids=()
for i in "${!hosts[@]}"; do
  inner="cd $repo && $python -m jaxrl_verify.train --config=$config --workdir=$workdir \
--coordinator_address=${hosts[0]}:$port --num_processes=${#hosts[@]} --process_id=$i$extra"
  if ((dry_run)); then
    run ssh "${hosts[$i]}" "$inner"
  elif ((i == 0)); then
    ssh "${hosts[$i]}" "$inner" &  # Worker 0's log streams here.
    pids+=($!)
  else
    ssh "${hosts[$i]}" "$inner" >"gpu_multinode_$i.log" 2>&1 &
    pids+=($!)
  fi
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
