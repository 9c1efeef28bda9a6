//! One conformance suite for every backend: memory, the local filesystem, SFTP and S3
//! (the last two against servers this test process starts on 127.0.0.1, see [`servers`]).
//! Every case runs on each backend as `<backend>::<case>`; a case skips only the checks a
//! backend cannot show (the modes and temporary files of a backend whose files are not on
//! this machine), never a backend.
//!
//! `STRATA_TEST_BACKENDS` (comma-separated `memory`, `fs`, `sftp`, `s3`) selects backends;
//! unset, all of them run, so `cargo test` (and CI) needs `sshd` and `weed` (`bash .ci/run`
//! installs both) and fails, saying what to install, without them.
//!
//! Beside the suite: checks that only make sense on a local disk ([`local_disk`]) and of
//! opening backends from locations ([`locations`]).

mod backends;
mod cases;
mod local_disk;
mod locations;
mod servers;

/// The runtime every case runs on. One for the whole process, not one per test: opendal's
/// HTTP client pools connections process-wide, and a connection made on a runtime that a
/// finished test dropped fails the next request that picks it ("dispatch task is gone").
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// One module per backend, one test per case in each.
macro_rules! for_backend {
    ($module:ident, $kind:ident, [$($case:ident),*]) => {
        mod $module {
            use crate::backends::{Fixture, Kind};
            $(
                #[test]
                fn $case() {
                    crate::runtime().block_on(async {
                        if let Some(f) = Fixture::new(Kind::$kind).await {
                            crate::cases::$case(&f).await;
                        }
                    });
                }
            )*
        }
    };
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        for_backend!(memory, Memory, [$($case),*]);
        for_backend!(fs, Fs, [$($case),*]);
        for_backend!(sftp, Sftp, [$($case),*]);
        for_backend!(s3, S3, [$($case),*]);
    };
}

conformance!(
    round_trip,
    read_range,
    list_sorted_with_sizes,
    list_empty,
    stat,
    delete_is_idempotent,
    missing_read_is_not_found,
    overwrite,
    invalid_names,
    create_layout_twice,
    write_file_consumes_the_file,
    spool_files_are_temporary,
    modes,
    temp_files_are_not_listed,
    leftovers_are_removed,
    missing_directories_are_made_and_large_objects_round_trip,
    free_space,
);
