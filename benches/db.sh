#!/usr/bin/env bash
# benches/db.sh — night-over-night dedup of a real PostgreSQL dump: strata against restic,
# borg and rustic on the same two dumps, in one run.
#
#   bash benches/db.sh [--scale N] [--workdir DIR] [--out FILE] [--no-build]
#
# Starts a private PostgreSQL 15 cluster on 127.0.0.1 (initdb as the postgres user, a free
# port, removed at the end), fills it with `pgbench -i -s N` and gives every account a
# realistic filler (two md5 strings instead of pgbench's blanks, which compress to nothing),
# then:
#   night 1: every tool backs up the dump (strata with `backup --postgres`, the others with
#            `pg_dump | tool backup --stdin`), and the repository size is recorded;
#   the day: 1% rows appended to pgbench_accounts, 0.1% updated in place (scattered);
#   night 2: the same again; what each repository grew by is what the second night added.
# Writes benches/RESULTS-db.md. Ratios, not absolute times: "added" is bytes on disk.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$here/.." && pwd)

scale=10
wd=/var/tmp/strata-dbbench
out="$here/RESULTS-db.md"
no_build=0
while (($# > 0)); do
    case $1 in
    --scale) scale=$2; shift 2 ;;
    --workdir) wd=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-build) no_build=1; shift ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "db.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

say() { printf '[db %s] %s\n' "$(date +%T)" "$*"; }

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[[ -x $pgbin/initdb ]] || { echo "db.sh: PostgreSQL server not installed (apt-get install postgresql)" >&2; exit 1; }
for t in restic borg rustic pg_dump pgbench; do
    command -v "$t" >/dev/null || say "note: $t not found; its column stays empty"
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/strata-target}
if ((no_build == 0)); then
    say "building strata (release)"
    cargo build -q --release -p strata-cli --manifest-path "$repo_root/Cargo.toml"
fi
strata=$CARGO_TARGET_DIR/release/strata

rm -rf -- "$wd"
mkdir -p -- "$wd"/{pg,repos,logs}
chown postgres "$wd/pg"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
    runuser -u postgres -- "$pgbin/pg_ctl" -D "$wd/pg/data" -m immediate stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
say "starting PostgreSQL on 127.0.0.1:$port"
runuser -u postgres -- "$pgbin/initdb" -D "$wd/pg/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 >"$wd/logs/initdb.log"
runuser -u postgres -- "$pgbin/pg_ctl" -D "$wd/pg/data" -l "$wd/pg/server.log" -w \
    -o "-p $port -k $wd/pg -c listen_addresses=127.0.0.1" start >/dev/null
psql -q -h "$wd/pg" -p "$port" -U postgres -c "CREATE USER bench SUPERUSER PASSWORD 'bench'"
export PGPASSWORD=bench PGHOST=127.0.0.1 PGPORT=$port PGUSER=bench
createdb bench
say "pgbench -i -s $scale, realistic filler"
pgbench -i -q -s "$scale" bench >"$wd/logs/pgbench.log" 2>&1
psql -q bench -c "UPDATE pgbench_accounts SET filler = md5(aid::text) || ' ' || md5((aid * 7)::text)" \
    -c "VACUUM FULL pgbench_accounts"
url="postgres://bench:bench@127.0.0.1:$port/bench"

export STRATA_PASSWORD_COMMAND="echo bench" RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench \
    RUSTIC_PASSWORD=bench BORG_BASE_DIR="$wd/borg-home" RUSTIC_NO_PROGRESS=true \
    RUSTIC_CACHE_DIR="$wd/rustic-cache" BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
tools=(strata)
for t in restic borg rustic; do command -v "$t" >/dev/null && tools+=("$t"); done

init() {
    local r="$wd/repos/$1"
    case $1 in
    strata) "$strata" -q -r "$r" init >/dev/null ;;
    restic) restic -q -r "$r" init >/dev/null ;;
    borg) borg init -e repokey-blake2 "$r" ;;
    rustic) rustic -r "$r" init >/dev/null 2>&1 ;;
    esac
}
backup() { # tool night
    local r="$wd/repos/$1"
    case $1 in
    strata) "$strata" -q -r "$r" backup --postgres "$url" ;;
    restic) pg_dump bench | restic -q -r "$r" backup --stdin --stdin-filename bench.sql ;;
    borg) pg_dump bench | borg create --compression zstd,3 "$r::night$2" - ;;
    # --force: with a parent snapshot, rustic 0.11 takes the stream for unchanged and reads nothing.
    rustic) pg_dump bench | rustic -r "$r" backup --force - --stdin-filename bench.sql ;;
    esac
}
size() { du -sb -- "$wd/repos/$1" | cut -f1; }

declare -A first second
dump_bytes=$(pg_dump bench | wc -c)
for t in "${tools[@]}"; do
    init "$t"
    say "night 1: $t"
    backup "$t" 1 >"$wd/logs/$t-1.log" 2>&1
    first[$t]=$(size "$t")
done
say "the day: 1% rows appended, 0.1% updated in place"
rows=$((scale * 100000))
psql -q bench -c "INSERT INTO pgbench_accounts (aid, bid, abalance, filler)
    SELECT aid, 1 + (aid % $scale), 0, md5(aid::text) || ' ' || md5((aid * 7)::text)
    FROM generate_series($rows + 1, $rows + $rows / 100) aid" \
    -c "UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid % 1000 = 0 AND aid <= $rows"
for t in "${tools[@]}"; do
    say "night 2: $t"
    backup "$t" 2 >"$wd/logs/$t-2.log" 2>&1
    second[$t]=$(size "$t")
done

{
    echo "# Night-over-night dedup of a PostgreSQL dump"
    echo
    echo "$(date -u +'%Y-%m-%d %H:%M UTC'), \`bash benches/db.sh --scale $scale\`: pgbench scale $scale"
    echo "($rows accounts with md5 filler), dump of $((dump_bytes / 1024 / 1024)) MiB; then 1% rows appended and"
    echo "0.1% updated in place. Sizes are bytes on disk of each repository (du -sb)."
    echo
    echo "| tool | after night 1 | added by night 2 | night 2 / night 1 | added vs restic |"
    echo "|---|---|---|---|---|"
    for t in "${tools[@]}"; do
        a=${first[$t]} b=$((second[$t] - first[$t]))
        r=${first[restic]:-}
        vs="-"
        [[ -n $r ]] && vs=$(python3 -c "print(f'{$b / (${second[restic]} - $r):.2f}')")
        python3 -c "print(f'| $t | {$a/1048576:.1f} MiB | {$b/1048576:.2f} MiB | {$b/$a:.3f} | $vs |')"
    done
    echo
    echo "Goal (issue #6): strata's night 2 adds at most half of what restic's adds (\"added vs restic\" ≤ 0.50)."
} >"$out"
cat -- "$out"
