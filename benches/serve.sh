#!/usr/bin/env bash
# benches/serve.sh — `strata serve` under load: latency of the snapshot list and the dashboard
# over 10,000 snapshots, of one directory of 100,000 entries, download throughput against
# `strata dump`, and how the server answers while a backup runs.
#
#   bash benches/serve.sh [--workdir DIR] [--out FILE] [--no-build] [--strata BIN]
#   SMALL=1 bash benches/serve.sh          # a quick run (about 2 minutes)
#
# Builds strata (release, CARGO_TARGET_DIR default /var/tmp/strata-target-bench, under the
# shared cargo lock /tmp/strata-cargo.lock when flock is there), then in DIR (default
# /var/tmp/strata-servebench, emptied first):
#   1. repository `many`: SNAPSHOTS snapshots of project `many` (10,000): BASE_BACKUPS
#      backups of a small tree (each its own process, so each derives the key: ~0.25 s),
#      then `strata rewrite --keep-old --exclude xK` rounds, each writing a new snapshot
#      beside every one it rewrites (doubling the count), and `forget --keep-last SNAPSHOTS`
#      of what is over. Real, encrypted snapshot files, one per snapshot, as a backup writes
#      them; those of one backup share its time (a rewrite keeps it) and most their trees;
#   2. repository `data`: a snapshot with one directory of DIR_ENTRIES (100,000) empty
#      files, one of a DOWNLOAD_MB (1024) MiB file (odd MiBs random, even ones text), and
#      project `run` (RUN_MB, 2048 MiB of random files) for the busy test;
#   3. `strata serve` over both (a user made by `strata serve user add`, a token per role);
#   4. p50 / p95 / max latency over REQUESTS (50) GETs each (fewer when one URL has taken
#      MAX_SECONDS, 60 s, of requests): GET /api/v1/snapshots (the whole list, a page of 50
#      with ?order=newest&limit=50, and ?offset=5000&limit=50), the pages / and
#      /projects/many; GET /api/v1/snapshots/ID/tree?path=DIR and the page
#      /snapshots/ID?path=DIR (a URL that answers 404 is reported `missing`);
#   5. download throughput: the big file through GET .../download?path= (curl to /dev/null)
#      against `strata dump` of it to /dev/null, best of DOWNLOAD_RUNS (3): MB/s and ratio;
#   6. GET /api/v1/whoami (no repository opened), / and /api/v1/projects, each URL in its
#      own thread (50 ms between its requests), while POST /api/v1/projects/run/run backs up RUN_MB, against the same
#      idle;
#   7. the server's resident memory after each section, and its peak (the server runs with
#      its address space capped at SERVER_MEM_GB, 8 GiB).
# Prints the table and writes benches/RESULTS-serve.md with the raw records in
# benches/RESULTS-serve.tsv (with --out FILE: FILE and FILE's .tsv). Times are of this
# machine (2 shared cores): compare ratios and orders of magnitude, not milliseconds.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$here/.." && pwd)

wd=/var/tmp/strata-servebench
out="$here/RESULTS-serve.md"
no_build=0
strata=
while (($# > 0)); do
    case $1 in
    --workdir) wd=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-build) no_build=1; shift ;;
    --strata) strata=$2; no_build=1; shift 2 ;;
    -h | --help) sed -n '2,36p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "serve.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
tsv="${out%.md}.tsv"

if [[ ${SMALL:-0} == 1 ]]; then
    : "${SNAPSHOTS:=300}" "${BASE_BACKUPS:=10}" "${DIR_ENTRIES:=5000}" "${DOWNLOAD_MB:=64}"
    : "${RUN_MB:=512}" "${REQUESTS:=20}" "${DOWNLOAD_RUNS:=2}"
fi
SNAPSHOTS=${SNAPSHOTS:-10000}
BASE_BACKUPS=${BASE_BACKUPS:-40}
DIR_ENTRIES=${DIR_ENTRIES:-100000}
DOWNLOAD_MB=${DOWNLOAD_MB:-1024}
RUN_MB=${RUN_MB:-2048}
REQUESTS=${REQUESTS:-50}
MAX_SECONDS=${MAX_SECONDS:-60}
DOWNLOAD_RUNS=${DOWNLOAD_RUNS:-3}
SERVER_MEM_GB=${SERVER_MEM_GB:-8}

say() { printf '[serve %s] %s\n' "$(date +%T)" "$*" >&2; }
for t in curl python3; do
    command -v "$t" >/dev/null || { echo "serve.sh: $t is needed" >&2; exit 1; }
done

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
[[ -x $strata ]] || { echo "serve.sh: no strata binary at $strata" >&2; exit 1; }
latency=(python3 "$here/serve-latency.py")

rm -rf -- "$wd"
mkdir -p -- "$wd"/{logs,state,home,cache}
server_pid=
job_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    return 0
}
trap cleanup EXIT
trap 'echo "serve.sh: failed at line $LINENO (logs in $wd/logs)" >&2' ERR
printf 'bench\n' >"$wd/password"
chmod 600 "$wd/password"
export STRATA_PASSWORD_FILE="$wd/password" HOME="$wd/home" XDG_CACHE_HOME="$wd/cache"
unset STRATA_REPOSITORY STRATA_PASSWORD STRATA_PASSWORD_COMMAND STRATA_CONFIG
: >"$tsv.tmp"
record() { # section what n p50 p95 max note
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$tsv.tmp"
}
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

# 1. Many snapshots.
many=$wd/repos/many
"$strata" init -r "$many" >"$wd/logs/init-many.log" 2>&1
src=$wd/many-src
mkdir -p "$src/etc"
rounds=0
while ((BASE_BACKUPS << rounds < SNAPSHOTS)); do rounds=$((rounds + 1)); done
for k in $(seq 0 "$rounds"); do printf 'doubling %s\n' "$k" >"$src/x$k"; done
printf 'listen 80\n' >"$src/etc/site.conf"
t0=$(now)
say "repository many: $BASE_BACKUPS backups"
for i in $(seq 1 "$BASE_BACKUPS"); do
    printf 'backup %s\n' "$i" >"$src/counter"
    "$strata" backup -r "$many" --project many --host web1 "$src" >>"$wd/logs/backup-many.log" 2>&1
done
t_backups=$(since "$t0")
count=$BASE_BACKUPS
for k in $(seq 1 "$rounds"); do
    say "repository many: rewrite round $k ($count -> $((2 * count)) snapshots)"
    "$strata" rewrite -r "$many" --keep-old --exclude "x$k" >>"$wd/logs/rewrite.log" 2>&1
    count=$((2 * count))
done
if ((count > SNAPSHOTS)); then
    # The oldest go (naming thousands of ids to rewrite would resolve each against the list).
    say "repository many: forget --keep-last $SNAPSHOTS of $count"
    "$strata" forget -r "$many" --group-by "" --keep-last "$SNAPSHOTS" >"$wd/logs/forget.log" 2>&1
fi
have=$(find "$many/snapshots" -type f | wc -l)
t_many=$(since "$t0")
say "repository many: $have snapshots in ${t_many}s ($BASE_BACKUPS backups ${t_backups}s, $rounds rewrite rounds)"
[[ $have == "$SNAPSHOTS" ]] || { echo "serve.sh: $have snapshots, not $SNAPSHOTS" >&2; exit 1; }
record setup "repository of $have snapshots" 1 "$t_many" "" "" "s: $BASE_BACKUPS backups ${t_backups}s, then $rounds rewrite rounds"

# 2. The data repository: one big directory, one big file.
data=$wd/repos/data
"$strata" init -r "$data" >"$wd/logs/init-data.log" 2>&1
t0=$(now)
python3 - "$wd/bigdir/dir" "$DIR_ENTRIES" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
for i in range(n):
    open(os.path.join(d, "entry-%07d.txt" % i), "w").close()
EOF
"$strata" backup -r "$data" --project bigdir "$wd/bigdir/dir" >"$wd/logs/backup-bigdir.log" 2>&1
record setup "directory of $DIR_ENTRIES entries (make + backup)" 1 "$(since "$t0")" "" "" "s"
t0=$(now)
python3 - "$wd/big/big.bin" "$DOWNLOAD_MB" <<'EOF'
import os, sys
path, mib = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.dirname(path))
text = b"".join(b"line %08d of a text part, which compresses well\n" % i for i in range(30000))
with open(path, "wb") as f:
    for i in range(mib):
        f.write(os.urandom(1 << 20) if i % 2 else text[: 1 << 20])
EOF
"$strata" backup -r "$data" --project big "$wd/big" >"$wd/logs/backup-big.log" 2>&1
record setup "file of $DOWNLOAD_MB MiB (make + backup)" 1 "$(since "$t0")" "" "" "s"
mkdir -p "$wd/run-src"
python3 - "$wd/run-src" "$RUN_MB" <<'EOF'
import os, sys
d, mib = sys.argv[1], int(sys.argv[2])
for i in range(0, mib, 64):
    with open(os.path.join(d, "part-%05d.bin" % i), "wb") as f:
        for _ in range(min(64, mib - i)):
            f.write(os.urandom(1 << 20))
EOF
sync

snap_of() { # repository project -> the id of its latest snapshot
    "$strata" snapshots -r "$1" --project "$2" --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])'
}
dir_snap=$(snap_of "$data" bigdir)
big_snap=$(snap_of "$data" big)

# 3. The server.
config=$wd/strata.toml
cat >"$config" <<EOF
state-dir = "$wd/state"
[repositories.many]
url = "$many"
password-file = "$wd/password"
[repositories.data]
url = "$data"
password-file = "$wd/password"
[projects.many]
paths = ["$src"]
repositories = ["many"]
[projects.run]
paths = ["$wd/run-src"]
repositories = ["data"]
EOF
export STRATA_CONFIG=$config
printf 'bench user password\n' >"$wd/user-password"
"$strata" serve user add bench --role viewer --password-file "$wd/user-password" >"$wd/logs/user.log" 2>&1
viewer=$("$strata" serve token add bench-viewer --role viewer)
operator=$("$strata" serve token add bench-operator --role operator)
# Its address space capped (SERVER_MEM_GB, 8): a server that grows past it fails alone
# rather than the machine's OOM killer choosing among everybody's processes.
(
    ulimit -v $((SERVER_MEM_GB << 20))
    exec "$strata" serve --listen 127.0.0.1:0 >"$wd/logs/serve.out" 2>"$wd/logs/serve.log"
) &
server_pid=$!
base=
for _ in $(seq 1 300); do
    # (The file may not exist yet: the subshell has not opened it.)
    base=$(sed -n 's/^strata serve: listening on //p' "$wd/logs/serve.out" 2>/dev/null || true)
    [[ -n $base ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$wd/logs/serve.log" >&2; exit 1; }
    sleep 0.1
done
[[ -n $base ]] || { echo "serve.sh: the server did not start" >&2; exit 1; }
say "serving on $base"
cookie=$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' \
    -d '{"user": "bench", "password": "bench user password"}' "$base/api/v1/session" |
    sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' | head -n1)
[[ -n $cookie ]] || { echo "serve.sh: the login failed" >&2; exit 1; }

# The server's memory now and at its peak, as a row of section $1.
memory() {
    local rss hwm
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || true)
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || true)
    if [[ -z $rss ]]; then
        record "$1" "server memory" "" "" "" "" "the server is gone: see $wd/logs/serve.log"
        echo "serve.sh: the server is gone (see $wd/logs/serve.log)" >&2
        exit 1
    fi
    record "$1" "server memory (MiB)" "" "$((rss >> 10))" "" "$((hwm >> 10))" "resident now; peak in max"
}

# Runs the latency client and records its figures: section, then its arguments.
measure() {
    local section=$1
    shift
    local json
    json=$("${latency[@]}" "$base" --token "$viewer" --cookie "$cookie" "$@")
    python3 - "$section" "$json" >>"$tsv.tmp" <<'EOF'
import json, sys
section, res = sys.argv[1], json.loads(sys.argv[2])
for url, r in res["urls"].items():
    if r.get("missing"):
        print(f"{section}\tGET {url}\t\t\t\tmissing\t404: not served (yet)")
    elif "error" in r:
        print(f"{section}\tGET {url}\t\t\t\tfailed\t{r['error'][:120]}")
    else:
        note = f"{r['bytes']} bytes"
        job = res.get("job")
        if job:
            note += f"; backup {job['state']}"
        print(f"{section}\tGET {url}\t{r['n']}\t{r['p50_ms']}\t{r['p95_ms']}\t{r['max_ms']}\t{note}")
EOF
}

# 4. Latencies.
say "latency: $SNAPSHOTS snapshots"
measure "$SNAPSHOTS snapshots" --n "$REQUESTS" --max-seconds "$MAX_SECONDS" \
    "/api/v1/snapshots" "/api/v1/snapshots?order=newest&limit=50" \
    "/api/v1/snapshots?offset=$((SNAPSHOTS / 2))&limit=50" \
    "/api/v1/snapshots?project=many&order=newest&limit=50"
memory "$SNAPSHOTS snapshots"
measure "$SNAPSHOTS snapshots" --n "$REQUESTS" --max-seconds "$MAX_SECONDS" "/" "/projects/many"
memory "$SNAPSHOTS snapshots"
dir_q=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe="/"))' "$wd/bigdir/dir")
say "latency: a directory of $DIR_ENTRIES entries"
measure "directory of $DIR_ENTRIES entries" --n "$REQUESTS" --max-seconds "$MAX_SECONDS" \
    "/api/v1/snapshots/$dir_snap/tree?path=$dir_q" "/snapshots/$dir_snap?path=$dir_q"
memory "directory of $DIR_ENTRIES entries"

# 5. Download throughput.
say "download: $DOWNLOAD_MB MiB, best of $DOWNLOAD_RUNS"
big_q=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe="/"))' "$wd/big/big.bin")
best_http=
best_dump=
for r in $(seq 1 "$DOWNLOAD_RUNS"); do
    line=$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}' \
        -H "Authorization: Bearer $operator" "$base/api/v1/snapshots/$big_snap/download?path=$big_q")
    read -r code got secs <<<"$line"
    [[ $code == 200 && $got == $((DOWNLOAD_MB << 20)) ]] ||
        { echo "serve.sh: the download answered $code with $got bytes" >&2; exit 1; }
    best_http=$(python3 -c 'import sys; a, b = sys.argv[1:]; print(b if not a or float(b) < float(a) else a)' "$best_http" "$secs")
    t0=$(now)
    "$strata" dump -r "$data" "$big_snap" "$wd/big/big.bin" >/dev/null 2>>"$wd/logs/dump.log"
    secs=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$t0" "$(now)")
    best_dump=$(python3 -c 'import sys; a, b = sys.argv[1:]; print(b if not a or float(b) < float(a) else a)' "$best_dump" "$secs")
done
python3 - "$DOWNLOAD_MB" "$best_http" "$best_dump" >>"$tsv.tmp" <<'EOF'
import sys
mib, http, dump = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
mb = mib * 1048576 / 1e6
print(f"download {mib} MiB\tGET .../download (curl)\t1\t{http:.2f}\t\t\t{mb / http:.0f} MB/s")
print(f"download {mib} MiB\tstrata dump > /dev/null\t1\t{dump:.2f}\t\t\t{mb / dump:.0f} MB/s")
print(f"download {mib} MiB\tratio download / dump\t\t{(mb / http) / (mb / dump):.2f}\t\t\tthroughput ratio (1 = as fast as dump)")
EOF
memory "download $DOWNLOAD_MB MiB"

# 6. While a backup runs.
say "latency idle, then while project run backs up $RUN_MB MiB"
measure "idle" --n "$REQUESTS" --max-seconds "$MAX_SECONDS" --parallel --pause 0.05 \
    "/api/v1/whoami" "/" "/api/v1/projects"
memory "idle"
job=$(curl -s -X POST -H "Authorization: Bearer $operator" "$base/api/v1/projects/run/run" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["id"])')
t0=$(now)
measure "backup of $RUN_MB MiB running" --n 100000 --max-seconds 100000 --no-warmup \
    --parallel --pause 0.05 --job-token "$operator" --while-job "/api/v1/jobs/$job" \
    "/api/v1/whoami" "/" "/api/v1/projects"
while :; do
    state=$(curl -s -H "Authorization: Bearer $operator" "$base/api/v1/jobs/$job" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
    [[ $state == queued || $state == running ]] || break
    sleep 0.5
done
record "backup of $RUN_MB MiB running" "the backup (POST /api/v1/projects/run/run)" 1 "$(since "$t0")" "" "" "s, $state"
memory "backup of $RUN_MB MiB running"

# The report.
mv "$tsv.tmp" "$tsv"
python3 - "$tsv" "$out" "$SNAPSHOTS" "$DIR_ENTRIES" "$DOWNLOAD_MB" "$RUN_MB" "$REQUESTS" "$repo_root" "$wd" <<'EOF'
import sys, platform, os, re, subprocess
tsv, out, snaps, entries, dl, run, n, root, wd = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(tsv)]
# Shorter URLs: snapshot ids to 8 digits, the work directory as WORKDIR.
rows = [[re.sub(r"\b([0-9a-f]{8})[0-9a-f]{56}\b", r"\1", c).replace(wd, "WORKDIR") for c in r]
        for r in rows]
try:
    rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
except OSError:
    rev = "?"
lines = [
    "# `strata serve` under load (benches/serve.sh)",
    "",
    f"Commit {rev}; {os.cpu_count()} CPUs; {platform.platform()}. Sizes: {snaps} snapshots, "
    f"a directory of {entries} entries, a {dl} MiB download, a {run} MiB backup running; "
    f"{n} requests per URL (fewer when one URL took its time budget).",
    "",
    "| section | what | n | p50 / time | p95 | max | note |",
    "|---|---|---:|---:|---:|---:|---|",
]
for r in rows:
    r = (r + [""] * 7)[:7]
    lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
lines += ["", "Latencies in ms (p50, p95, max over n requests, one keep-alive connection per URL); "
          "setup and download rows in seconds. `missing`: the URL answered 404 (a page not in "
          "this build). WORKDIR: the work directory; snapshot ids shortened."]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
say "wrote $out and $tsv"
