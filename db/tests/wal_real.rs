//! The WAL parsers against files a real PostgreSQL wrote: `initdb` makes a cluster (its first
//! segment `pg_wal/000000010000000000000001` and `global/pg_control`), and the parsed
//! header and control file must agree with each other, with `pg_controldata` and with the
//! installed server's version.
//!
//! Needs a PostgreSQL server under /usr/lib/postgresql (Debian's layout, as `.ci/run`
//! installs it) and the `postgres` user: `initdb` refuses to run as root, and the tests run
//! as root. Missing either fails the test, with what to install.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_db::wal::{
    pg_major_of_version_num, system_identifier, ControlFile, History, Lsn, SegmentHeader,
    SegmentName, SegmentSize, WalName, LONG_HEADER_LEN,
};

/// The newest PostgreSQL bin directory under /usr/lib/postgresql.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).expect(
        "no PostgreSQL server in /usr/lib/postgresql: install postgresql (bash .ci/run does)",
    )
}

/// Runs `program` as the `postgres` user (via `setpriv`) and returns its standard output.
fn as_postgres(program: &Path, args: &[&str]) -> String {
    nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("no `postgres` user: install postgresql (bash .ci/run does)");
    let out = Command::new("setpriv")
        .args([
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--",
        ])
        .arg(program)
        .args(args)
        .env("LC_ALL", "C")
        // The postgres user may not reach the test's working directory.
        .current_dir("/")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run setpriv (util-linux) for {}: {e}",
                program.display()
            )
        });
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}): {}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `server_version_num` of the major release of `postgres --version`
/// ("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" gives 150000).
fn installed_major(bin: &Path) -> u32 {
    let out = as_postgres(&bin.join("postgres"), &["--version"]);
    let version = out
        .split("(PostgreSQL) ")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected `postgres --version`: {out}"));
    let mut parts = version.split('.').map(|p| {
        p.trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse::<u32>()
            .unwrap_or(0)
    });
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    pg_major_of_version_num(if major >= 10 {
        major * 10000
    } else {
        major * 10000 + minor * 100
    })
}

/// A new cluster in a temporary directory (owned by `postgres`), made by `initdb`: the
/// directory (removed on drop) and the data directory in it.
fn new_cluster(bin: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("strata-wal-")
        .tempdir()
        .unwrap();
    let postgres = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("no `postgres` user: install postgresql (bash .ci/run does)");
    nix::unistd::chown(dir.path(), Some(postgres.uid), Some(postgres.gid)).unwrap();
    let data = dir.path().join("data");
    as_postgres(
        &bin.join("initdb"),
        &[
            "--pgdata",
            data.to_str().unwrap(),
            "--username=postgres",
            "--auth=trust",
            "--no-locale",
            "--no-sync",
        ],
    );
    (dir, data)
}

/// The first page of the WAL file `name` in `data`'s `pg_wal`.
fn first_page(data: &Path, name: &str) -> Vec<u8> {
    let mut page = vec![0u8; 8192];
    std::fs::File::open(data.join("pg_wal").join(name))
        .unwrap()
        .read_exact(&mut page)
        .unwrap();
    page
}

#[test]
fn the_first_segment_and_pg_control_of_a_new_cluster_agree() {
    let bin = bin_dir();
    let (_dir, data) = new_cluster(&bin);
    let data_arg = data.to_str().unwrap();

    // The segment: read only its first page, as wal-push would to check it.
    let name = "000000010000000000000001";
    let first_page = first_page(&data, name);
    let header = SegmentHeader::parse(&first_page).unwrap();
    header.check_name(&WalName::parse(name).unwrap()).unwrap();
    assert_eq!(header.timeline, 1);
    assert_eq!(header.seg_size, SegmentSize::DEFAULT);
    assert_eq!(header.page_addr, 16 << 20, "segment 1 starts at 0/1000000");
    assert_eq!(header.block_size, 8192);
    // Another name for the same bytes is refused.
    assert!(header
        .check_name(&WalName::parse("000000010000000000000002").unwrap())
        .is_err());
    // The header alone, as the parser needs it.
    assert_eq!(
        SegmentHeader::parse(&first_page[..LONG_HEADER_LEN]).unwrap(),
        header
    );

    // pg_control, with its CRC.
    let control = ControlFile::read(&data).unwrap();
    assert_eq!(system_identifier(&data).unwrap(), control.system_identifier);
    assert_eq!(header.system_id, control.system_identifier);

    // What PostgreSQL's own tool says.
    let said = as_postgres(&bin.join("pg_controldata"), &[data_arg]);
    let field = |label: &str| -> String {
        said.lines()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} in pg_controldata's output:\n{said}"))
            .trim()
            .to_string()
    };
    assert_eq!(
        field("Database system identifier:"),
        control.system_identifier.to_string()
    );
    assert_eq!(
        field("pg_control version number:"),
        control.pg_control_version.to_string()
    );
    assert_eq!(
        field("Bytes per WAL segment:"),
        header.seg_size.get().to_string()
    );
    assert_eq!(field("WAL block size:"), header.block_size.to_string());

    // The magic names the installed release.
    let major = installed_major(&bin);
    assert_eq!(
        header.pg_major(),
        Some(major),
        "magic {:#06x} of PostgreSQL {major}: add it to the table in db/src/wal/header.rs",
        header.magic
    );

    // A damaged pg_control is refused, naming the file.
    let mut bytes = std::fs::read(data.join("global/pg_control")).unwrap();
    bytes[0] ^= 1;
    let e = ControlFile::parse(&bytes).unwrap_err().to_string();
    assert!(
        e.contains("global/pg_control: its CRC-32C matches none"),
        "{e}"
    );
}

/// Stops the server of a data directory when dropped (a failing test leaves none running).
struct Running<'a> {
    bin: &'a Path,
    data: &'a Path,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = Command::new("setpriv")
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
            ])
            .arg(self.bin.join("pg_ctl"))
            .args(["stop", "-w", "-m", "immediate", "-D"])
            .arg(self.data)
            .current_dir("/")
            .output();
    }
}

/// A promotion starts timeline 2 with a history file, and the first segment of timeline 2
/// begins as a copy of timeline 1's up to the switch point: its first page still says
/// timeline 1, which [`SegmentHeader::check_name`] must accept.
#[test]
fn a_promotion_writes_a_history_and_a_first_segment_copied_from_the_parent() {
    let bin = bin_dir();
    let (dir, data) = new_cluster(&bin);
    let data_arg = data.to_str().unwrap();
    let socket_dir = dir.path().to_str().unwrap();
    // A standby with nothing to follow, promoted at once.
    std::fs::write(data.join("standby.signal"), "").unwrap();
    let options = format!("-c listen_addresses='' -k {socket_dir} -c fsync=off");
    let pg_ctl = bin.join("pg_ctl");
    let log = dir.path().join("log");
    let _running = Running {
        bin: &bin,
        data: &data,
    };
    as_postgres(
        &pg_ctl,
        &[
            "start",
            "-w",
            "-D",
            data_arg,
            "-l",
            log.to_str().unwrap(),
            "-o",
            &options,
        ],
    );
    as_postgres(&pg_ctl, &["promote", "-w", "-D", data_arg]);
    as_postgres(&pg_ctl, &["stop", "-w", "-m", "fast", "-D", data_arg]);

    let history = std::fs::read_to_string(data.join("pg_wal/00000002.history")).unwrap();
    assert_eq!(
        WalName::parse("00000002.history").unwrap(),
        WalName::History { timeline: 2 }
    );
    let history = History::parse(2, &history).unwrap();
    let [entry] = history.entries() else {
        panic!("one switch expected: {history:?}");
    };
    assert_eq!(entry.parent, 1);
    let switch = entry.switch;
    assert_eq!(history.timeline_of(Lsn(switch.0 - 1)), 1);
    assert_eq!(history.timeline_of(switch), 2);

    // The segment of timeline 2 that holds the switch point.
    let size = SegmentSize::DEFAULT;
    let name = SegmentName::holding(switch, 2, size).unwrap();
    let header = SegmentHeader::parse(&first_page(&data, &name.to_string())).unwrap();
    header.check_name(&name.into()).unwrap();
    assert_ne!(size.offset_of(switch), 0, "the switch is inside a segment");
    assert_eq!(header.timeline, 1, "a copy of timeline 1's segment {name}");
    assert_eq!(header.system_id, system_identifier(&data).unwrap());
}
