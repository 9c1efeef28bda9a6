#!/usr/bin/env bash
# benches/pitr.sh — how fast `strata pg wal-push` archives PostgreSQL WAL, against pgBackRest
# (issue #18): the rate a busy cluster of this machine writes segments, then archiving and
# restoring the same real segments one process per segment, as PostgreSQL runs
# archive_command and restore_command.
#
#   bash benches/pitr.sh [--workdir DIR] [--out FILE] [--no-build] [--strata BIN] [--note TEXT]
#   SMALL=1 bash benches/pitr.sh          # a quick run (16 segments, a short pgbench)
#
# Installs what is missing (apt-get: postgresql, pgbackrest, time), builds strata (release,
# CARGO_TARGET_DIR default /var/tmp/strata-target-bench, under the shared cargo lock
# /tmp/strata-cargo.lock when flock is there), then in DIR (default /var/tmp/strata-pitrbench,
# emptied first, about 10 GB free needed; everything in it owned by the postgres user, as a
# real archive_command runs; the cluster is removed at the end):
#   1. a PostgreSQL cluster of its own (initdb as postgres, 127.0.0.1 on a free port, its own
#      socket directory; fsync off, full_page_writes on), archive_mode on with
#      archive_command '/bin/true', wal_keep_size 4GB so the segments stay in pg_wal;
#   2. `pgbench -i -s SCALE` (20), then busy: `pgbench -T BUSY_SECONDS -c CLIENTS -j 2` (60 s,
#      4 clients); the WAL it wrote (pg_current_wal_lsn before and after) in segments/s
#      (16 MiB each): the rate a WAL archiver must keep up with on this machine;
#   3. when the busy run wrote fewer than SEGMENTS (64) segments, more pgbench (not timed,
#      TOPUP_SECONDS at most, 600); the last SEGMENTS complete segments copied, names kept, into DIR/src/pg_wal with
#      `.ready` status files, beside copies of the cluster's global/pg_control and
#      PG_VERSION: a data directory as an archiver sees it (the cluster is stopped before
#      the timings, after `pgbackrest stanza-create`, which needs it running);
#   4. each archiver pushes every segment, one process per segment, sequentially, from DIR/src
#      as PostgreSQL does (a segment's `.ready` becomes `.done` after its push):
#        strata      `strata pg wal-push --project bench --pgdata SRC pg_wal/SEG` into a fresh
#                    local repository made by `strata init` with the default argon2id cost
#                    (64 MiB, 3 passes), as it runs by default: wal-push and wal-fetch keep
#                    the unwrapped key in <state-dir>/key-cache, so only the first process
#                    derives it (a binary without the cache derives it in every process;
#                    the row's note says which happened);
#        strata-nocache  the same with the cache refused: <state-dir>/key-cache is made a
#                    directory of root's, which the cache will not use, so each process
#                    warns and derives the key with argon2id: that cost is measured here;
#        pgbackrest  `pgbackrest --stanza=bench archive-push SEG` into a local repository
#                    (repo1-path in DIR, stanza-create first), its defaults: gz compression,
#                    no encryption;
#        pgbackrest-zst  the same with compress-type=zst (its default level, 3; strata
#                    compresses with zstd too);
#        pgbackrest-aes  the same as pgbackrest with repo1-cipher-type=aes-256-cbc (strata
#                    always encrypts);
#        pgbackrest-async  archive-async=y, process-max=2, spool in DIR: the first push
#                    starts a detached worker that pushes every `.ready` segment ahead
#                    (and archive-get, in this row, prefetches into the spool the same way);
#      then fetches every segment back, one process each (`strata pg wal-fetch --project
#      bench SEG DEST`, `pgbackrest archive-get SEG DEST`), and compares each with the
#      original (cmp, outside the timing);
#   5. per row: wall time, segments/s, CPU seconds per segment (user+sys of every process the
#      run started, detached ones included, from a cpuacct cgroup when /sys/fs/cgroup/cpuacct
#      is writable, else the waited-for children's from /usr/bin/time), the repository's size
#      after (du -sb) and how many segments it holds (`strata pg verify`; pgBackRest's
#      archive/ files), and for fetches how many came back byte-identical; ratios
#      strata / pgbackrest of segments/s; `uptime` and what else ran, before and after.
# STRATA_VARIANTS chooses the strata rows ("cache nocache", the default; or one of them).
# Prints the table and writes
# benches/RESULTS-pitr.md with the raw records in benches/RESULTS-pitr.tsv (with --out FILE:
# FILE and FILE's .tsv). Times are of this machine (2 shared cores): compare ratios.
set -Eeuo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$here/.." && pwd)

wd=/var/tmp/strata-pitrbench
out="$here/RESULTS-pitr.md"
no_build=0
strata=
note=
while (($# > 0)); do
    case $1 in
    --workdir) wd=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-build) no_build=1; shift ;;
    --strata) strata=$2; no_build=1; shift 2 ;;
    --note) note=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -E/{/^set -E/!p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "pitr.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
tsv="${out%.md}.tsv"

if [[ ${SMALL:-0} == 1 ]]; then
    : "${SEGMENTS:=16}" "${SCALE:=5}" "${BUSY_SECONDS:=20}"
fi
SEGMENTS=${SEGMENTS:-64}
SCALE=${SCALE:-20}
BUSY_SECONDS=${BUSY_SECONDS:-60}
CLIENTS=${CLIENTS:-4}

say() { printf '[pitr %s] %s\n' "$(date +%T)" "$*" >&2; }
((EUID == 0)) || { echo "pitr.sh: run as root (it runs PostgreSQL and the archivers as postgres)" >&2; exit 1; }

# 1. What it needs.
need=()
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
[[ -n $pgbin && -x $pgbin/initdb && -x $pgbin/pgbench ]] || need+=(postgresql postgresql-contrib)
command -v pgbackrest >/dev/null || need+=(pgbackrest)
[[ -x /usr/bin/time ]] || need+=(time)
command -v python3 >/dev/null || need+=(python3)
command -v setpriv >/dev/null || need+=(util-linux)
if ((${#need[@]} > 0)); then
    say "installing ${need[*]}"
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi

if [[ -z $strata ]]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/strata-target-bench}
    strata=$CARGO_TARGET_DIR/release/strata
fi
if ((no_build == 0)); then
    say "building strata (release)"
    lock=()
    command -v flock >/dev/null && lock=(flock /tmp/strata-cargo.lock)
    "${lock[@]}" cargo build -q --release -p strata-cli --manifest-path "$repo_root/Cargo.toml"
fi
[[ -x $strata ]] || { echo "pitr.sh: no strata binary at $strata" >&2; exit 1; }
strata=$(readlink -f -- "$strata")
STRATA_VARIANTS=${STRATA_VARIANTS:-cache nocache}

as_pg() { setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; }

rm -rf -- "$wd"
mkdir -p -- "$wd"/{pg,logs,repos,src/global,src/pg_wal/archive_status,fetched,home}
printf 'bench\n' >"$wd/password"
chmod 600 "$wd/password"
chown -R postgres:postgres "$wd"
chmod 700 "$wd/pg"
cgroup=
cleanup() {
    as_pg "$pgbin/pg_ctl" -D "$wd/pg/data" -m immediate stop >/dev/null 2>&1 || true
    [[ -n $cgroup && -d $cgroup ]] && rmdir "$cgroup" 2>/dev/null
    return 0
}
trap cleanup EXIT
trap 'echo "pitr.sh: failed at line $LINENO (logs in $wd/logs)" >&2' ERR
: >"$tsv.tmp"
record() { # section what n seconds seg/s cpu/seg size note
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$tsv.tmp"
}
now() { date +%s.%N; }
# What else runs: processes over 10% of a CPU during one second, their command lines cut.
busy_now() {
    python3 - <<'PY'
import os, time
def sample():
    t = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
                t[p] = int(f[11]) + int(f[12])
            except (OSError, IndexError, ValueError):
                pass
    return t
a = sample(); time.sleep(1); b = sample()
hz = os.sysconf("SC_CLK_TCK")
out = []
for p, v in b.items():
    pct = 100 * (v - a.get(p, v)) / hz
    if pct > 10:
        try:
            argv = open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace").split("\0")
        except OSError:
            continue
        cmd = " ".join([os.path.basename(argv[0])] + argv[1:]).strip()
        out.append((pct, cmd[:80]))
print("; ".join(f"{pct:.0f}% {cmd}" for pct, cmd in sorted(out, reverse=True)) or "nothing")
PY
}
load_before=$(uptime)
busy_before=$(busy_now)

# 2. The cluster, and its WAL rate under pgbench.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "initdb; PostgreSQL on 127.0.0.1:$port"
as_pg "$pgbin/initdb" -D "$wd/pg/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --no-locale --no-sync >"$wd/logs/initdb.log"
cat >>"$wd/pg/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$wd/pg'
fsync = off
archive_mode = on
archive_command = '/bin/true'
wal_keep_size = '4GB'
EOF
as_pg "$pgbin/pg_ctl" -D "$wd/pg/data" -l "$wd/logs/postgres.log" -w start >/dev/null
psql() { command "$pgbin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$wd/pg" -p "$port" -U postgres "$@"; }
pgbench() { command "$pgbin/pgbench" -h "$wd/pg" -p "$port" -U postgres "$@"; }
psql -d postgres -c "CREATE DATABASE bench"
say "pgbench -i -s $SCALE"
pgbench -i -q -s "$SCALE" bench >"$wd/logs/pgbench-init.log" 2>&1
psql -d bench -c CHECKPOINT
lsn0=$(psql -d postgres -c "SELECT pg_current_wal_lsn()")
first_busy=$(psql -d postgres -c "SELECT pg_walfile_name('$lsn0')")
say "pgbench -T $BUSY_SECONDS -c $CLIENTS (busy)"
t0=$(now)
pgbench -T "$BUSY_SECONDS" -c "$CLIENTS" -j 2 bench >"$wd/logs/pgbench.log" 2>&1
t1=$(now)
lsn1=$(psql -d postgres -c "SELECT pg_current_wal_lsn()")
wal_bytes=$(psql -d postgres -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$wd/logs/pgbench.log" | tail -n1)
python3 - "$t0" "$t1" "$wal_bytes" "$tps" "$BUSY_SECONDS" "$CLIENTS" "$SCALE" >>"$tsv.tmp" <<'EOF'
import sys
t0, t1, wal, tps = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
secs, clients, scale = sys.argv[5:8]
d = t1 - t0
print(f"busy cluster\tpgbench -T {secs} -c {clients} (scale {scale})\t{wal / 16777216:.1f}\t{d:.1f}"
      f"\t{wal / 16777216 / d:.3f}\t\t\t{wal / d / 1e6:.1f} MB/s of WAL, {float(tps or 0):.0f} tps: "
      f"the segments/s an archiver must keep up with")
EOF
# The segments archived are the busy run's: when it wrote fewer than SEGMENTS, pgbench goes on
# (not timed) until there are enough, TOPUP_SECONDS (600) at most.
seg_no() { echo $((16#${1:8:8} * 256 + 16#${1:16:8})); } # a segment name's number (16 MiB)
topup=0
t_end=$(($(date +%s) + ${TOPUP_SECONDS:-600}))
while :; do
    cur=$(psql -d postgres -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
    (($(seg_no "$cur") - $(seg_no "$first_busy") >= SEGMENTS)) && break
    (($(date +%s) >= t_end)) && break
    pgbench -T 15 -c "$CLIENTS" -j 2 bench >>"$wd/logs/pgbench-topup.log" 2>&1
    topup=$((topup + 15))
done
# Every segment up to the one holding the current LSN complete and marked done by '/bin/true'.
last_busy=$(psql -d postgres -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
psql -d postgres -c "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 600); do
    done_wal=$(psql -d postgres -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
    [[ $done_wal > $last_busy || $done_wal == "$last_busy" ]] && break
    sleep 0.1
done

# 3. The segments.
mapfile -t segs < <(cd "$wd/pg/data/pg_wal" && for s in ????????????????????????; do
    [[ $s =~ ^[0-9A-F]{24}$ && -e archive_status/$s.done && ! $s > $last_busy ]] && echo "$s"
done | sort | tail -n "$SEGMENTS")
((${#segs[@]} == SEGMENTS)) ||
    { echo "pitr.sh: only ${#segs[@]} complete segments in pg_wal, not $SEGMENTS (raise BUSY_SECONDS or SCALE)" >&2; exit 1; }
from_busy=0
for s in "${segs[@]}"; do [[ $s > $first_busy || $s == "$first_busy" ]] && from_busy=$((from_busy + 1)); done
src=$wd/src
for s in "${segs[@]}"; do
    cp -- "$wd/pg/data/pg_wal/$s" "$src/pg_wal/$s"
done
cp -- "$wd/pg/data/global/pg_control" "$src/global/"
cp -- "$wd/pg/data/PG_VERSION" "$src/"
printf '%s\n' "${segs[@]}" >"$wd/segments"
seg_bytes=$(du -cb "$src"/pg_wal/0* | tail -n1 | cut -f1)
chown -R postgres:postgres "$src" "$wd/segments"
say "$SEGMENTS segments ${segs[0]} .. ${segs[-1]} ($from_busy written by pgbench runs, $topup s of them after the timed one)"

# The archivers' repositories.
export STRATA_PASSWORD_FILE="$wd/password"
unset STRATA_REPOSITORY STRATA_PASSWORD STRATA_PASSWORD_COMMAND STRATA_CONFIG
variants=()
for v in $STRATA_VARIANTS; do
    case $v in
    cache) sv=strata ;;
    nocache) sv="strata-nocache" ;;
    *) echo "pitr.sh: STRATA_VARIANTS: $v is neither cache nor nocache" >&2; exit 2 ;;
    esac
    variants+=("$sv")
    mkdir -p "$wd/home/$sv" "$wd/state/$sv"
    cat >"$wd/$sv.toml" <<EOF
state-dir = "$wd/state/$sv"
[repositories.main]
url = "$wd/repos/$sv"
password-file = "$wd/password"
[projects.bench]
paths = ["$wd/pg/data"]
repositories = ["main"]
EOF
    chown -R postgres:postgres "$wd/home/$sv" "$wd/state" "$wd/$sv.toml"
    if [[ $sv == strata-nocache ]]; then
        # The key cache (state-dir/key-cache) is refused when not the user's own: a root
        # directory there makes every process warn and derive the key with argon2id.
        install -d -o root -g root -m 755 "$wd/state/$sv/key-cache"
    fi
    HOME=$wd/home/$sv XDG_CACHE_HOME=$wd/home/$sv/.cache \
        as_pg "$strata" init -r "$wd/repos/$sv" >"$wd/logs/init-$sv.log" 2>&1
done
for v in pgbackrest pgbackrest-zst pgbackrest-aes pgbackrest-async; do
    variants+=("$v")
    mkdir -p "$wd/home/$v"
    chown postgres:postgres "$wd/home/$v"
    {
        echo "[global]"
        echo "repo1-path=$wd/repos/$v"
        echo "log-path=$wd/logs/$v"
        echo "lock-path=$wd/lock-$v"
        echo "spool-path=$wd/spool-$v"
        echo "log-level-console=warn"
        case $v in
        pgbackrest-zst) echo "compress-type=zst" ;;
        pgbackrest-aes) echo "repo1-cipher-type=aes-256-cbc"; echo "repo1-cipher-pass=bench" ;;
        pgbackrest-async) echo "archive-async=y"; echo "process-max=2" ;;
        esac
        echo "[bench]"
        echo "pg1-path=$wd/pg/data"
        echo "pg1-port=$port"
        echo "pg1-socket-path=$wd/pg"
    } >"$wd/$v.conf"
    chown postgres:postgres "$wd/$v.conf"
    as_pg pgbackrest --config="$wd/$v.conf" --stanza=bench stanza-create >"$wd/logs/stanza-$v.log" 2>&1
done
say "stopping the cluster (the timings run on an idle machine, as far as this script goes)"
as_pg "$pgbin/pg_ctl" -D "$wd/pg/data" -m fast -w stop >/dev/null
# The archivers look at src/ as their data directory from now on.
for v in pgbackrest pgbackrest-zst pgbackrest-aes pgbackrest-async; do
    sed -i "s|^pg1-path=.*|pg1-path=$src|; /^pg1-port=/d; /^pg1-socket-path=/d" "$wd/$v.conf"
done

# One process per segment, in the order PostgreSQL would run them.
cat >"$wd/run.sh" <<'EOF'
#!/usr/bin/env bash
# run.sh VARIANT push|fetch: every segment of $WD/segments, one process each, from $SRC.
set -euo pipefail
v=$1 op=$2
cd "$SRC"
while read -r seg; do
    case $v:$op in
    strata*:push) "$STRATA" pg wal-push --project bench --pgdata "$SRC" "pg_wal/$seg" ;;
    strata*:fetch) "$STRATA" pg wal-fetch --project bench "$seg" "$WD/fetched/$v/$seg" ;;
    pgbackrest*:push) pgbackrest --config="$WD/$v.conf" --stanza=bench archive-push "$SRC/pg_wal/$seg" ;;
    pgbackrest*:fetch) pgbackrest --config="$WD/$v.conf" --stanza=bench archive-get "$seg" "$WD/fetched/$v/$seg" ;;
    *) echo "run.sh: no command for $v $op" >&2; exit 2 ;;
    esac
    if [[ $op == push ]]; then
        mv "$SRC/pg_wal/archive_status/$seg.ready" "$SRC/pg_wal/archive_status/$seg.done"
    fi
done <"$WD/segments"
EOF
chmod 755 "$wd/run.sh"

if mkdir "/sys/fs/cgroup/cpuacct/strata-pitrbench-$$" 2>/dev/null; then
    cgroup=/sys/fs/cgroup/cpuacct/strata-pitrbench-$$
    cpu_source="a cpuacct cgroup (every process of the run, detached ones included)"
else
    cpu_source="/usr/bin/time (user+sys of the waited-for children; a detached async worker is not counted)"
fi

# Runs VARIANT OP under /usr/bin/time (and the cgroup); records its row.
timed() {
    local v=$1 op=$2 cpu0=0 cpu1=0 line
    if [[ $op == push ]]; then
        rm -f "$src"/pg_wal/archive_status/*
        for s in "${segs[@]}"; do : >"$src/pg_wal/archive_status/$s.ready"; done
        chown -R postgres:postgres "$src/pg_wal/archive_status"
    else
        mkdir -p "$wd/fetched/$v"
        chown postgres:postgres "$wd/fetched/$v"
    fi
    sync
    local load0
    load0=$(cut -d' ' -f1 /proc/loadavg)
    [[ -n $cgroup ]] && cpu0=$(cat "$cgroup/cpuacct.usage")
    local status=0
    (
        [[ -n $cgroup ]] && echo "$BASHPID" >"$cgroup/tasks"
        export WD=$wd SRC=$src STRATA=$strata STRATA_CONFIG=$wd/$v.toml \
            HOME=$wd/home/$v XDG_CACHE_HOME=$wd/home/$v/.cache
        exec /usr/bin/time -f '%e %U %S' -o "$wd/logs/time-$v-$op" \
            setpriv --reuid=postgres --regid=postgres --clear-groups -- "$wd/run.sh" "$v" "$op"
    ) >"$wd/logs/$v-$op.log" 2>&1 || status=$?
    if [[ $v == pgbackrest-async ]]; then
        # The detached worker may outlive the last push by a moment: its CPU counts too.
        for _ in $(seq 1 100); do
            [[ -z $cgroup || $(wc -l <"$cgroup/tasks") == 0 ]] && break
            sleep 0.1
        done
    fi
    [[ -n $cgroup ]] && cpu1=$(cat "$cgroup/cpuacct.usage")
    # Cache files the run left (counted before pg verify below, which may write one too).
    local kc_files
    kc_files=$(find "$wd/state/$v/key-cache" -type f 2>/dev/null | wc -l || true)
    if ((status != 0)); then
        say "$v $op failed (exit $status): $(tail -n 3 "$wd/logs/$v-$op.log" | tr '\n' ' ')"
        record "$op" "$v" "$SEGMENTS" "" "" "" "" "failed: see WORKDIR/logs/$v-$op.log"
        return 0
    fi
    local size='' check=
    if [[ $op == push ]]; then
        size=$(du -sb "$wd/repos/$v" | cut -f1)
        # What the archive holds now: a run that pushed nothing must not pass for a fast one.
        local held
        if [[ $v == strata* ]]; then
            # (pg verify exits 1 on a gap or an empty archive: its JSON says what it holds.)
            held=$({ STRATA_CONFIG=$wd/$v.toml HOME=$wd/home/$v XDG_CACHE_HOME=$wd/home/$v/.cache \
                as_pg "$strata" pg verify --project bench --json 2>>"$wd/logs/verify-$v.log" || true; } |
                python3 -c '
import json, sys
try:
    print(sum(t["segments"] for t in json.load(sys.stdin)["timelines"]))
except Exception as e:
    print(f"? ({type(e).__name__})")')
            check="; $held/$SEGMENTS segments in the archive (strata pg verify)"
        else
            held=$(find "$wd/repos/$v/archive/bench" -type f -name '0*-*' | wc -l)
            check="; $held/$SEGMENTS segments in the archive"
        fi
        if [[ $held != "$SEGMENTS" ]]; then
            say "$v: $held of $SEGMENTS segments archived"
            check="$check: INCOMPLETE, the figures do not count"
        fi
    else
        local bad=0
        for s in "${segs[@]}"; do cmp -s "$src/pg_wal/$s" "$wd/fetched/$v/$s" || bad=$((bad + 1)); done
        check="; $((SEGMENTS - bad))/$SEGMENTS byte-identical"
    fi
    line=$(tail -n1 "$wd/logs/time-$v-$op")
    if [[ $v == strata* ]]; then
        local files=$kc_files warned
        warned=$(grep -c 'not using the key cache' "$wd/logs/$v-$op.log" || true)
        if [[ $v == strata-nocache ]] && ((warned == 0)); then
            check="$check; no key cache refused ($files cache files): a binary without one?"
        elif [[ $v == strata-nocache ]]; then
            check="$check; key cache refused by $warned of $SEGMENTS processes, $files cache files"
        elif ((files > 0 && warned == 0)); then
            check="$check; key cache on ($files file in state-dir/key-cache)"
        else
            check="$check; key cache NOT used ($files files, $warned refusals: a binary without one?)"
        fi
    fi
    check="$check; load $load0 -> $(cut -d' ' -f1 /proc/loadavg)"
    python3 - "$op" "$v" "$SEGMENTS" "$line" "$cpu0" "$cpu1" "$size" "$check" "$seg_bytes" >>"$tsv.tmp" <<'PY'
import sys
op, v, n, line, c0, c1, size, check, seg_bytes = sys.argv[1:]
n = int(n)
wall, user, sys_ = (float(x) for x in line.split())
wall = max(wall, 0.01)  # /usr/bin/time's resolution
cpu = (int(c1) - int(c0)) / 1e9 if int(c1) else user + sys_
sz = f"{int(size) / 1048576:.2f}" if size else ""
ratio = f"; {int(size) / int(seg_bytes):.3f} of the segments' bytes" if size else ""
print(f"{op}\t{v}\t{n}\t{wall:.2f}\t{n / wall:.2f}\t{cpu / n:.3f}\t{sz}\t"
      f"children user {user:.1f} s + sys {sys_:.1f} s{ratio}{check}")
PY
    say "$v $op: $(tail -n1 "$tsv.tmp" | cut -f4,5 | tr '\t' ' ') s, seg/s"
}

for op in push fetch; do
    for v in "${variants[@]}"; do
        say "$v: $op $SEGMENTS segments, one process each"
        timed "$v" "$op"
    done
done
load_after=$(uptime)
busy_after=$(busy_now)

# The report.
mv "$tsv.tmp" "$tsv"
python3 - "$tsv" "$out" "$repo_root" "$wd" "$SEGMENTS" "$from_busy" "$seg_bytes" "$cpu_source" \
    "$load_before" "$load_after" "$busy_before" "$busy_after" "$note" "$strata" \
    "$(pgbackrest version)" "$("$pgbin/postgres" --version)" "${segs[0]}" "${segs[-1]}" \
    "$(date -u +'%Y-%m-%d %H:%M UTC')" "$topup" "$("$strata" --version)" <<'EOF'
import sys, os, platform, subprocess
(tsv, out, root, wd, n, from_busy, seg_bytes, cpu_source, load0, load1, busy0, busy1, note,
 strata, pgbr, pgv, seg0, seg1, when, topup, sv) = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(tsv)]
rows = [[c.replace(wd, "WORKDIR") for c in r] for r in rows]
try:
    rev = subprocess.run(["git", "-C", root, "log", "-1", "--format=%h"],
                         capture_output=True, text=True).stdout.strip()
except OSError:
    rev = "?"
rate = {(r[0], r[1]): float(r[4]) for r in rows if len(r) > 4 and r[4] and r[0] in ("push", "fetch")}
ratios = []
for op in ("push", "fetch"):
    for s in sorted({v for (o, v) in rate if o == op and v.startswith("strata")}):
        for p in sorted({v for (o, v) in rate if o == op and v.startswith("pgbackrest")}):
            ratios.append([f"ratio {op}", f"{s} / {p}", "", "", f"{rate[(op, s)] / rate[(op, p)]:.2f}",
                           "", "", "segments/s ratio (1 = as fast as pgBackRest)"])
busy = next((float(r[4]) for r in rows if r[0] == "busy cluster"), None)
keep = []
if busy:
    for (op, v), r in sorted(rate.items()):
        if op == "push":
            keep.append(["keeps up?", v, "", "", f"{r / busy:.1f}", "", "",
                         "its push segments/s over the busy cluster's (≥ 1: keeps up, one process at a time)"])
lines = [
    "# WAL archiving: `strata pg wal-push` against pgBackRest (benches/pitr.sh)",
    "",
    f"{when}; the script at {rev}; {sv}; "
    f"{os.cpu_count()} CPUs; {platform.platform()}; {pgv}; {pgbr}.",
    f"{n} real segments ({seg0} .. {seg1}, {int(seg_bytes) / 1048576:.0f} MiB; {from_busy} of them "
    f"written by pgbench runs (the timed busy run, then {topup} s more, not timed)"
    + (", the others by `pgbench -i`" if int(from_busy) < int(n) else "")
    + "), each pushed then fetched "
    "by its own process, one after the other, as PostgreSQL runs archive_command and "
    "restore_command. CPU from " + cpu_source + ".",
]
if note:
    lines += ["", note]
lines += [
    "",
    "| section | what | n | seconds | segments/s (or ratio) | CPU s / segment | repository MiB | note |",
    "|---|---|---:|---:|---:|---:|---:|---|",
]
for r in rows + ratios + keep:
    r = (r + [""] * 8)[:8]
    lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
lines += [
    "",
    f"Load before: `{load0.strip()}`; after: `{load1.strip()}`.",
    "",
    f"Other processes over 10% of a CPU (one second) before: {busy0}",
    "",
    f"After: {busy1}",
    "",
    "Load in each row's note: the 1-minute load average at its start -> at its end (2 CPUs).",
]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
# The cluster (its WAL kept: gigabytes) and the fetched copies are no longer needed.
rm -rf -- "$wd/pg/data" "$wd/fetched"
say "wrote $out and $tsv (repositories and logs stay in $wd)"
