#!/usr/bin/env bash
# A real multi-node Slurm cluster on one machine (default 2 nodes), for tests, CI and trying the sbatch
# scripts on a laptop.
#
# usage: tools/local_slurm.sh start [--accounting]|stop|status|env
#
#   start   install slurm-wlm/slurmctld/slurmd/slurm-client/munge with apt-get if missing (needs root),
#           write slurm.conf + gres.conf (LOCAL_SLURM_GPUS fake GPUs per node, default 1: File=/dev/null)
#           under $LOCAL_SLURM_DIR,
#           start munged (unless one runs), slurmctld and one slurmd per node, and wait until all nodes are idle.
#           Idempotent: a running cluster is left as it is (stop it first to change --accounting).
#           --accounting: also slurmdbd + a private MariaDB (installed if missing), so `sacct` works.
#   stop    stop only the daemons this script started (by PID from their pidfiles) and wait for them to go.
#   status  print the daemons, `sinfo` and the SLURM_CONF to export; exit 0 only if the node answers.
#   env     print `export SLURM_CONF=...` (eval "$(tools/local_slurm.sh env)").
#
# Nodes: LOCAL_SLURM_NODES (default 2) slurmd daemons on this machine ("multiple slurmd": `slurmd -N NAME`),
# node i named <hostname -s> for i=1 (so one-node jobs log the real host) and <hostname -s>-n<i> after, each
# with NodeAddr 127.0.0.<i>, its own slurmd Port (LOCAL_SLURM_SLURMD_PORT + i - 1), spool, pid and log file,
# all CPUs and LOCAL_SLURM_GPUS (1-8, default 1) fake GPUs. Every node's NodeHostname is the real host
# (multiple slurmd requires it); the tasks of a multi-node job see SLURMD_NODENAME / SLURM_NODEID of their
# node, and the first node's name resolves, so MASTER_ADDR from `scontrol show hostnames` works for
# torch.distributed across the nodes.
# Environment: LOCAL_SLURM_DIR (default /tmp/clinie-slurm): state, spool, pids, logs and the config;
# LOCAL_SLURM_{CTLD,SLURMD,DBD,DB}_PORT (6817, 6818 (first node; one port per node), 6819, 3307) to run a
# second cluster beside the first (leave a gap of LOCAL_SLURM_NODES ports after SLURMD_PORT).
# When /etc/slurm/slurm.conf is absent, start links it to the generated config (so plain `sbatch` works
# for every shell) and stop removes that link again. Runs as root: SlurmUser=root, no cgroups, no systemd.
set -euo pipefail

DIR="${LOCAL_SLURM_DIR:-/tmp/clinie-slurm}"
CONF="$DIR/slurm.conf"
ETC_LINK=/etc/slurm/slurm.conf
HOST="$(hostname -s)"
MUNGE_PID=/run/munge/munged.pid
PACKAGES=(slurm-wlm slurmctld slurmd slurm-client munge)
ACCOUNTING=0
DB_PORT="${LOCAL_SLURM_DB_PORT:-3307}"
CTLD_PORT="${LOCAL_SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${LOCAL_SLURM_SLURMD_PORT:-6818}"
DBD_PORT="${LOCAL_SLURM_DBD_PORT:-6819}"
NODES="${LOCAL_SLURM_NODES:-2}"
[[ "$NODES" =~ ^[1-9]$ ]] || { echo "local_slurm: error: LOCAL_SLURM_NODES must be 1-9, not '$NODES'" >&2; exit 2; }
GPUS="${LOCAL_SLURM_GPUS:-1}"
[[ "$GPUS" =~ ^[1-8]$ ]] || { echo "local_slurm: error: LOCAL_SLURM_GPUS must be 1-8, not '$GPUS'" >&2; exit 2; }

node_name() { if (($1 == 1)); then echo "$HOST"; else echo "$HOST-n$1"; fi; }
NODE_NAMES=()
for ((i = 1; i <= NODES; i++)); do NODE_NAMES+=("$(node_name "$i")"); done
slurmd_port() { echo $((SLURMD_PORT + 10 * ($1 - 1))); }  # +10: room for DBD_PORT and a second cluster
slurmd_pid() { echo "$DIR/run/slurmd-$1.pid"; }  # SlurmdPidFile's %n

log() { echo "local_slurm: $*" >&2; }
die() { log "error: $*"; exit 1; }

pid_alive() {  # a pidfile whose process exists and is not a zombie
  local pidfile=$1 pid state
  [[ -s "$pidfile" ]] || return 1
  pid="$(cat "$pidfile" 2>/dev/null)"  # (a stopping daemon removes its pidfile)
  [[ -r "/proc/$pid/stat" ]] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)"
  [[ "$state" != "Z" ]]
}

install_if_missing() {
  local missing=()
  ((ACCOUNTING)) && PACKAGES+=(slurmdbd mariadb-server)
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  [[ "$(id -u)" == 0 ]] || die "missing packages ${missing[*]} and not root: cannot apt-get install"
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get"
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

accounting_lines() {
  if ((ACCOUNTING)); then
    printf '%s\n' "AccountingStorageType=accounting_storage/slurmdbd" "AccountingStorageHost=localhost" \
      "AccountingStoragePort=$DBD_PORT" "AccountingStorageTRES=gres/gpu" "JobAcctGatherType=jobacct_gather/linux" \
      "JobAcctGatherFrequency=5"
  else
    printf '%s\n' "AccountingStorageType=accounting_storage/none" "JobAcctGatherType=jobacct_gather/none"
  fi
}

start_accounting() {  # a private MariaDB on 127.0.0.1:$DB_PORT, then slurmdbd; before slurmctld
  mkdir -p "$DIR/mysql"
  if [[ ! -d "$DIR/mysql/mysql" ]]; then
    mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root --auth-root-authentication-method=normal \
      >"$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
  fi
  if ! pid_alive "$DIR/run/mariadbd.pid"; then
    mariadbd --no-defaults --datadir="$DIR/mysql" --socket="$DIR/run/mysql.sock" --pid-file="$DIR/run/mariadbd.pid" \
      --port="$DB_PORT" --bind-address=127.0.0.1 --user=root --log-error="$DIR/log/mariadbd.log" \
      </dev/null >>"$DIR/log/mariadbd.log" 2>&1 &
    touch "$DIR/run/started_mariadbd"
    local i
    for i in $(seq 1 60); do [[ -S "$DIR/run/mysql.sock" ]] && break; sleep 0.5; done
  fi
  mariadb --no-defaults --socket="$DIR/run/mysql.sock" -uroot -e "
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'clinie-local';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'clinie-local';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" || die "could not prepare the accounting database"
  cat >"$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=clinie-local
StorageLoc=slurm_acct_db
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
EOF
  chmod 600 "$DIR/slurmdbd.conf"
  if ! pid_alive "$DIR/run/slurmdbd.pid"; then
    SLURM_CONF="$CONF" slurmdbd
    touch "$DIR/run/started_slurmdbd"
  fi
  local i
  for i in $(seq 1 60); do
    SLURM_CONF="$CONF" sacctmgr -n list cluster >/dev/null 2>&1 && break
    sleep 0.5
  done
  SLURM_CONF="$CONF" sacctmgr -i -Q add cluster clinie >/dev/null 2>&1 || true
}

# File= of a node's fake GPUs: /dev/null for one; for more, one empty file each under $DIR/dev (gres/gpu
# counts one GPU per file: Count=N without files registers 0 and the node goes INVAL, "gres/gpu count
# reported lower than configured")
gres_files() {
  if ((GPUS == 1)); then echo "File=/dev/null"; return 0; fi
  mkdir -p "$DIR/dev"
  local i
  for ((i = 0; i < GPUS; i++)); do : >"$DIR/dev/gpu$i"; done
  echo "File=$DIR/dev/gpu[0-$((GPUS - 1))]"
}

write_config() {
  mkdir -p "$DIR"/{state,spool,run,log}
  local cpus mem i name
  cpus="$(nproc)"
  mem=$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) - 2048 ))
  ((mem > 1024)) || mem=1024
  for name in "${NODE_NAMES[@]}"; do mkdir -p "$DIR/spool/$name"; done
  {
    cat <<EOF
# written by tools/local_slurm.sh: a $NODES-node test cluster on this machine (one slurmd per node)
ClusterName=clinie
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
$(accounting_lines)
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerParameters=sched_interval=2,bf_interval=2
ReturnToService=2
MinJobAge=600
KillWait=15
GresTypes=gpu
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
# Preemption (slurm.conf(5) PreemptType, PreemptMode; https://slurm.schedmd.com/preempt.html): a job in the
# higher-tier partition "urgent" preempts jobs of "preempt-requeue" (Slurm requeues them itself) and of
# "preempt-cancel" (Slurm cancels them: SIGTERM, KillWait, SIGKILL). The default partition "debug" is never
# preempted (PreemptMode=OFF), so jobs submitted without -p behave as on a cluster without preemption.
# KillWait (SIGTERM -> SIGKILL at preemption, cancel, time limit; 30 s by default) is 15 s, not 5: on a
# loaded 2-core CI machine a 2-rank torch job (ranks, torchrun, launcher, run-stage) needed ~6 s from SIGTERM
# to a checkpoint and the last process gone. Jobs that exit at SIGTERM are not slowed down by it.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
EOF
    for ((i = 1; i <= NODES; i++)); do
      echo "NodeName=$(node_name "$i") NodeHostname=$HOST NodeAddr=127.0.0.$i Port=$(slurmd_port "$i")" \
        "CPUs=$cpus RealMemory=$mem Gres=gpu:$GPUS State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=OFF"
    echo "PartitionName=preempt-requeue Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE"
    echo "PartitionName=preempt-cancel Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=CANCEL"
    echo "PartitionName=urgent Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF"
  } >"$CONF.tmp"
  mv "$CONF.tmp" "$CONF"
  for name in "${NODE_NAMES[@]}"; do echo "NodeName=$name Name=gpu $(gres_files)"; done >"$DIR/gres.conf"
  if [[ ! -e "$ETC_LINK" && -d /etc/slurm && -w /etc/slurm ]]; then
    ln -s "$CONF" "$ETC_LINK"
    echo "$ETC_LINK" >"$DIR/run/etc_link"
  fi
}

# "name state" per node (one line per node: sinfo -N repeats a node once per partition)
node_states() { SLURM_CONF="$CONF" sinfo -h -N -p debug -o '%N %t' 2>/dev/null || true; }
node_state() { node_states | awk 'NR == 1 {print $2}'; }

wait_idle() {  # every node of the config answers idle/mix/alloc
  local i states name state ready
  for i in $(seq 1 60); do
    states="$(node_states)"
    ready=0
    while read -r name state; do
      [[ -n "$name" ]] || continue
      case "$state" in
        idle | mix | alloc) ready=$((ready + 1)) ;;
        down* | drain* | inval*)
          SLURM_CONF="$CONF" scontrol update nodename="$name" state=resume >/dev/null 2>&1 || true ;;
      esac
    done <<<"$states"
    ((ready > 0 && ready == $(grep -c '^NodeName=' "$CONF"))) && return 0
    sleep 0.5
    ((i % 20 == 0)) && log "waiting for the nodes (states: ${states//$'\n'/, })"
  done
  die "nodes not idle after 30 s (states: ${states//$'\n'/, }); see $DIR/log/"
}

running_slurmds() {  # pidfiles of this cluster's live slurmd daemons (one per node; slurmd.pid: older layout)
  local f
  for f in "$DIR"/run/slurmd*.pid; do pid_alive "$f" && echo "$f"; done
  return 0
}

start() {
  install_if_missing
  if pid_alive "$DIR/run/slurmctld.pid" && [[ -n "$(running_slurmds)" ]]; then
    wait_idle
    log "already running ($DIR, $(grep -c '^NodeName=' "$CONF") node(s); stop it first to change them)"
    return 0
  fi
  write_config
  if ! pid_alive "$MUNGE_PID"; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    runuser -u munge -- /usr/sbin/munged
    touch "$DIR/run/started_munged"
  fi
  if ((ACCOUNTING)); then start_accounting; fi
  pid_alive "$DIR/run/slurmctld.pid" || { slurmctld -f "$CONF"; touch "$DIR/run/started_slurmctld"; }
  local name
  for name in "${NODE_NAMES[@]}"; do
    pid_alive "$(slurmd_pid "$name")" || { slurmd -f "$CONF" -N "$name"; touch "$DIR/run/started_slurmd-$name"; }
  done
  wait_idle
  log "running: $NODES node(s) ${NODE_NAMES[*]}, partition debug (+ preempt-requeue, preempt-cancel, urgent), $GPUS fake GPU(s) each, accounting" \
    "$( ((ACCOUNTING)) && echo on || echo off) ($DIR)"
  echo "export SLURM_CONF=$CONF"
}

stop_daemon() {  # name pidfile
  local name=$1 pidfile=$2 pid i
  [[ -e "$DIR/run/started_$name" ]] || return 0
  if pid_alive "$pidfile"; then
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      pid_alive "$pidfile" || break
      # a daemon that exited may leave a zombie or its pidfile behind; the process state decides
      sleep 0.2
      if ((i == 50)); then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    pid_alive "$pidfile" && die "$name (pid $pid) did not stop"
  fi
  rm -f "$DIR/run/started_$name"
  log "stopped $name"
}

other_slurm_daemons() {  # a live (not zombie) slurmctld/slurmd of any cluster on this machine
  local pid
  for pid in $(pgrep -x slurmctld || true) $(pgrep -x slurmd || true); do
    [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)" != Z ]] && return 0
  done
  return 1
}

stop() {
  local f name
  for f in "$DIR"/run/started_slurmd*; do  # every node's slurmd (started_slurmd: the older one-node layout)
    [[ -e "$f" ]] || continue
    name="${f##*/started_}"
    stop_daemon "$name" "$DIR/run/$name.pid"
  done
  stop_daemon slurmctld "$DIR/run/slurmctld.pid"
  stop_daemon slurmdbd "$DIR/run/slurmdbd.pid"
  stop_daemon mariadbd "$DIR/run/mariadbd.pid"
  # munged is shared by every cluster on this machine (one /run/munge socket): stop it only when no other
  # slurmctld/slurmd still runs, else a second cluster beside this one loses its authentication.
  if other_slurm_daemons; then
    [[ -e "$DIR/run/started_munged" ]] && log "leaving munged running: other Slurm daemons still use it"
    rm -f "$DIR/run/started_munged"
  else
    stop_daemon munged "$MUNGE_PID"
  fi
  if [[ -s "$DIR/run/etc_link" ]]; then
    [[ -L "$ETC_LINK" && "$(readlink "$ETC_LINK")" == "$CONF" ]] && rm -f "$ETC_LINK"
    rm -f "$DIR/run/etc_link"
  fi
}

status() {
  local ok=0 name pidfile names=(munged slurmctld) f
  for f in "$DIR"/run/started_slurmd*; do [[ -e "$f" ]] && names+=("${f##*/started_}"); done
  ((${#names[@]} > 2)) || names+=("slurmd-${NODE_NAMES[0]}")
  names+=(slurmdbd mariadbd)
  for name in "${names[@]}"; do
    if [[ $name == slurmdbd || $name == mariadbd ]] && [[ ! -e "$DIR/run/started_$name" ]]; then continue; fi
    pidfile="$DIR/run/$name.pid"
    [[ $name == munged ]] && pidfile="$MUNGE_PID"
    if pid_alive "$pidfile"; then echo "$name: running (pid $(cat "$pidfile"))"; else echo "$name: stopped"; ok=1; fi
  done
  if ((ok == 0)) && [[ -n "$(node_state)" ]]; then
    SLURM_CONF="$CONF" sinfo -N -o "%P %a %t %N %G"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  return 1
}

[[ "${2:-}" == "--accounting" ]] && ACCOUNTING=1
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
