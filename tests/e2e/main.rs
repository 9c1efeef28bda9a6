//! End-to-end tests: every test drives the real `strata` binary against a
//! repository in its own temporary directory.
//!
//! The tests run as root (CI and development machines alike): they create
//! device nodes, change owners and, for the unreadable-file test, drop
//! privileges with `setpriv`. Nothing is written outside the tests' temporary
//! directories, and no test asserts timings.

mod backup_options;
mod browse;
mod browser;
mod check_subset;
mod cli;
mod commands;
mod crash;
mod dashboard;
mod dashboard_browse;
mod dashboard_pages;
mod dashboard_restore;
mod db;
mod dedup;
mod errors;
mod fault;
mod hostile_sources;
mod install;
mod keys;
mod locks;
mod maintenance;
mod many_hosts;
mod migrate;
mod mount;
mod ops;
mod passwords;
mod pitr;
mod pitr_restore;
mod pitr_window;
mod progress;
mod prune_beside;
mod remote;
mod restore_safety;
mod roundtrip;
mod secrets;
mod selection;
mod serve;
mod serve_auth;
mod serve_bench_api;
mod serve_jobs;
mod serve_ops;
mod serve_read;
mod util;
