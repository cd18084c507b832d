#!/usr/bin/env bash
# Train on a Cloud TPU VM slice with plain multi-controller JAX: the same command on
# every worker (`gcloud compute tpus tpu-vm ssh --worker=all`), no Pathways, no Kubernetes.
#
#   launch/tpu_pod.sh [--dry-run] COMMAND --name=NAME --zone=ZONE [options] [-- train flags]
#
# Commands:
#   up      create (or reuse) the slice, copy and install the code, run, stream worker 0's log
#   create  create the slice unless it exists (--spot for a spot slice)
#   setup   copy this checkout (git HEAD) to every worker and pip-install it with [tpu]
#   run     start training on every worker (in the background), then stream worker 0's log
#   logs    stream worker 0's log
#   stop    SIGTERM the trainer on every worker (it checkpoints at the next step and exits)
#   watch   for spot slices: until training finishes, recreate a preempted slice, set it up
#           and run again; the run resumes from the gs:// workdir's latest checkpoint
#   delete  delete the slice
#
# Options: --name, --zone, --project (default: gcloud's), --accelerator (v5p-8),
#   --version (runtime; default by generation), --spot, --config=CONFIG, --workdir=gs://...,
#   --poll=SECONDS (watch; 120). Everything after `--` goes to `python -m jaxrl_verify.train`.
# --dry-run prints the gcloud commands instead of running them.
set -euo pipefail

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then dry_run=1; shift; fi
command=${1:-}
shift || true
name="" zone="" project="" accelerator=v5p-8 version="" spot=0 config="" workdir="" poll=120
train_flags=()
while (($#)); do
  case $1 in
    --name=*) name=${1#*=} ;;
    --zone=*) zone=${1#*=} ;;
    --project=*) project=${1#*=} ;;
    --accelerator=*) accelerator=${1#*=} ;;
    --version=*) version=${1#*=} ;;
    --spot) spot=1 ;;
    --config=*) config=${1#*=} ;;
    --workdir=*) workdir=${1#*=} ;;
    --poll=*) poll=${1#*=} ;;
    --) shift; train_flags=("$@"); break ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
if [[ ! $command =~ ^(up|create|setup|run|logs|stop|watch|delete)$ || -z $name || -z $zone ]]; then
  echo "usage: $0 [--dry-run] up|create|setup|run|logs|stop|watch|delete --name=NAME --zone=ZONE [options] [-- train flags]" >&2
  exit 2
fi
if [[ -z $version ]]; then
  case $accelerator in
    v5p-*) version=v2-alpha-tpuv5 ;;
    v5litepod-* | v5e-*) version=v2-alpha-tpuv5-lite ;;
    v6e-*) version=v2-alpha-tpuv6e ;;
    *) version=tpu-ubuntu2204-base ;;
  esac
fi

tpu=(gcloud compute tpus tpu-vm)
where=(--zone="$zone")
if [[ -n $project ]]; then where+=(--project="$project"); fi
remote_dir='~/jaxrl_verify'

run() {  # Print (dry run) or execute one command.
  if ((dry_run)); then
    local out="" a
    for a in "$@"; do
      if [[ $a == *[\ \'\"\$]* ]]; then out+="${a@Q} "; else out+="$a "; fi
    done
    echo "${out% }"
  else
    "$@"
  fi
}

ssh_all() { run "${tpu[@]}" ssh "$name" "${where[@]}" --worker=all --command="$1"; }

exists() {  # A dry run pretends the slice does not exist yet.
  ((dry_run == 0)) && "${tpu[@]}" describe "$name" "${where[@]}" --format='value(state)' >/dev/null 2>&1
}

state() { "${tpu[@]}" describe "$name" "${where[@]}" --format='value(state)' 2>/dev/null || echo MISSING; }

do_create() {
  if exists; then
    echo "Reusing TPU slice $name ($(state))." >&2
    return
  fi
  local args=(create "$name" "${where[@]}" --accelerator-type="$accelerator" --version="$version")
  if ((spot)); then args+=(--spot); fi
  run "${tpu[@]}" "${args[@]}"
}

do_setup() {
  local tarball=/tmp/jaxrl_verify_$$.tar.gz
  run git -C "$(dirname "$0")/.." archive --format=tar.gz --prefix=jaxrl_verify/ -o "$tarball" HEAD
  run "${tpu[@]}" scp "$tarball" "$name:jaxrl_verify.tar.gz" "${where[@]}" --worker=all
  ssh_all "rm -rf $remote_dir && tar xzf jaxrl_verify.tar.gz && python3 -m venv ~/venv && cd $remote_dir && ~/venv/bin/pip install -q -e '.[tpu]'"
  if ((dry_run == 0)); then rm -f "$tarball"; fi
}

do_run() {
  if [[ -z $config || -z $workdir ]]; then
    echo "run needs --config=CONFIG and --workdir=gs://BUCKET/RUN (shared by all workers)." >&2
    exit 2
  fi
  local flags="" mount="" run_dir=$workdir
  if ((${#train_flags[@]})); then flags=$(printf ' %q' "${train_flags[@]}"); fi
  if [[ $workdir == gs://* ]]; then
    # The trainer appends to files in its workdir, which GCS objects do not allow: every
    # worker mounts the bucket with Cloud Storage FUSE and trains in the mount.
    local path=${workdir#gs://} bucket
    bucket=${path%%/*}
    run_dir="\$HOME/gcs/$bucket${path#"$bucket"}"
    mount="mkdir -p ~/gcs/$bucket && (mountpoint -q ~/gcs/$bucket || gcsfuse --implicit-dirs $bucket ~/gcs/$bucket) && "
  fi
  # Every worker runs the same command; jax.distributed finds the slice by itself.
  ssh_all "${mount}cd $remote_dir && rm -f ~/train.done && (nohup ~/venv/bin/python -m jaxrl_verify.train --config=$config --workdir=$run_dir$flags > ~/train.log 2>&1 && touch ~/train.done) > /dev/null 2>&1 & echo \$! > ~/train.pid"
}

do_logs() { run "${tpu[@]}" ssh "$name" "${where[@]}" --worker=0 --command='tail -n +1 -F ~/train.log'; }

case $command in
  create) do_create ;;
  setup) do_setup ;;
  run) do_run; do_logs ;;
  up) do_create; do_setup; do_run; do_logs ;;
  logs) do_logs ;;
  stop) ssh_all 'kill -TERM -- -$(ps -o pgid= $(cat ~/train.pid) | tr -d " ") 2>/dev/null || true' ;;
  delete) run "${tpu[@]}" delete "$name" "${where[@]}" --quiet ;;
  watch)
    if ((dry_run)); then
      do_create; do_setup; do_run
      echo "# then every ${poll}s: describe; if PREEMPTED/MISSING: delete, create, setup, run" >&2
      exit 0
    fi
    while true; do
      s=$(state)
      if [[ $s == READY ]]; then
        if "${tpu[@]}" ssh "$name" "${where[@]}" --worker=0 --command='test -f ~/train.done' 2>/dev/null; then
          echo "Training finished; delete the slice with: $0 delete --name=$name --zone=$zone" >&2
          exit 0
        fi
        if ! "${tpu[@]}" ssh "$name" "${where[@]}" --worker=0 --command='kill -0 $(cat ~/train.pid)' 2>/dev/null; then
          echo "No trainer running on $name: starting it (it resumes from $workdir)." >&2
          do_run
        fi
      elif [[ $s == PREEMPTED || $s == TERMINATED || $s == MISSING ]]; then
        echo "Slice $name is $s: recreating it; training resumes from $workdir." >&2
        if [[ $s != MISSING ]]; then "${tpu[@]}" delete "$name" "${where[@]}" --quiet; fi
        do_create && do_setup && do_run || echo "Recreating failed; retrying in ${poll}s." >&2
      fi
      sleep "$poll"
    done
    ;;
esac
