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
    pg_major_of_version_num, system_identifier, ControlFile, SegmentHeader, SegmentSize, WalName,
    LONG_HEADER_LEN,
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

#[test]
fn the_first_segment_and_pg_control_of_a_new_cluster_agree() {
    let bin = bin_dir();
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
    let data_arg = data.to_str().unwrap();
    as_postgres(
        &bin.join("initdb"),
        &[
            "--pgdata",
            data_arg,
            "--username=postgres",
            "--auth=trust",
            "--no-locale",
            "--no-sync",
        ],
    );

    // The segment: read only its first page, as wal-push would to check it.
    let name = "000000010000000000000001";
    let mut first_page = vec![0u8; 8192];
    std::fs::File::open(data.join("pg_wal").join(name))
        .unwrap()
        .read_exact(&mut first_page)
        .unwrap();
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
