//! Key management: `key list`, `key add`, `key remove`, `key passwd`.

use serde_json::Value;

use crate::util::*;

const CHEAP_KDF: [&str; 4] = ["--kdf-memory", "1024", "--kdf-iterations", "1"];

fn keys(env: &Env, password_file: &std::path::Path) -> Vec<Value> {
    env.cmd()
        .env("STRATA_PASSWORD_FILE", password_file)
        .args(["key", "list", "--json"])
        .run()
        .success()
        .json()
        .as_array()
        .unwrap()
        .clone()
}

/// After `key add` and `key remove` of the first key, the second password opens the
/// repository and the first does not; the last key cannot be removed, nor the key in use.
#[test]
fn second_password_replaces_the_first() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"kept across key changes\n");
    let id = env.backup(&[&src]);
    let first_pw = env.password_file.clone();
    let second_pw = env.path("second-password");
    std::fs::write(&second_pw, "a different password\n").unwrap();

    let before = keys(&env, &first_pw);
    assert_eq!(before.len(), 1, "{before:?}");
    let first = before[0]["id"].as_str().unwrap().to_string();
    assert_eq!(before[0]["current"], true);
    assert_eq!(before[0]["host"], hostname());
    assert_eq!(before[0]["user"], "root");
    assert!(before[0]["created"].as_str().unwrap().starts_with("20"));

    // The last key cannot go.
    env.cmd()
        .args(["key", "remove", &first[..8]])
        .run()
        .failure()
        .stderr_contains("opened the repository with");

    env.cmd()
        .env("STRATA_NEW_PASSWORD_FILE", &second_pw)
        .args(["key", "add"])
        .args(CHEAP_KDF)
        .run()
        .success();
    let both = keys(&env, &second_pw);
    assert_eq!(both.len(), 2, "{both:?}");
    let second = both.iter().find(|k| k["current"] == true).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(first, second);

    // Opened with the first password, the first key is in use and stays.
    env.cmd()
        .args(["key", "remove", &first])
        .run()
        .failure()
        .stderr_contains("another password");
    // Opened with the second, the first goes.
    env.cmd()
        .env("STRATA_PASSWORD_FILE", &second_pw)
        .args(["key", "remove", &first[..10]])
        .run()
        .success();
    env.strata(["snapshots"]).code(12);
    let out = env
        .cmd()
        .env("STRATA_PASSWORD_FILE", &second_pw)
        .args(["dump", &id])
        .arg(src.join("a.txt"))
        .run()
        .success();
    assert_eq!(out.stdout, b"kept across key changes\n");
    let after = keys(&env, &second_pw);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["id"], second.as_str());
    // Now the second key is the last one.
    env.cmd()
        .env("STRATA_PASSWORD_FILE", &second_pw)
        .args(["key", "remove", &second])
        .run()
        .failure();
    env.cmd()
        .env("STRATA_PASSWORD_FILE", &second_pw)
        .args(["key", "remove", "ffffffff"])
        .run()
        .failure()
        .stderr_contains("no key");
}

/// `key passwd` replaces the key in use: the new password opens the repository, the old
/// one no longer does, and there is still exactly one key.
#[test]
fn passwd_changes_the_password() {
    let env = Env::init();
    let new_pw = env.path("new-password");
    std::fs::write(&new_pw, "brand new\n").unwrap();
    env.cmd()
        .env("STRATA_NEW_PASSWORD_FILE", &new_pw)
        .args(["key", "passwd"])
        .args(CHEAP_KDF)
        .run()
        .success();
    env.strata(["snapshots"]).code(12);
    let list = keys(&env, &new_pw);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["current"], true);
    // An empty new password is refused, and changes nothing.
    let empty = env.path("empty");
    std::fs::write(&empty, "\n").unwrap();
    env.cmd()
        .env("STRATA_PASSWORD_FILE", &new_pw)
        .env("STRATA_NEW_PASSWORD_FILE", &empty)
        .args(["key", "add"])
        .run()
        .failure()
        .stderr_contains("empty");
    assert_eq!(keys(&env, &new_pw).len(), 1);
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The sequence of issue #12 through the binary: a repository whose config was deleted is
/// reported as such (not "no repository, run init"), `init` refuses to create a new one
/// over it, `repair index` and `prune` refuse to run, and `repair config` restores it with
/// every snapshot intact. A flipped byte in the key file is named, not "wrong password".
#[test]
fn a_lost_config_is_restored_by_repair_config_and_init_refuses() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"alpha\n");
    write_file(&src.join("b.bin"), &random_bytes(7, 300_000));
    let first = env.backup(&[&src]);
    write_file(&src.join("a.txt"), b"alpha, edited\n");
    let second = env.backup(&[&src]);
    let packs = env.repo_files("data");
    std::fs::remove_file(env.repo.join("config")).unwrap();

    for cmd in [
        &["snapshots"][..],
        &["check"],
        &["prune"],
        &["repair", "index"],
    ] {
        env.strata(cmd)
            .code(1)
            .one_line_error()
            .stderr_contains("config")
            .stderr_contains("is missing")
            .stderr_contains("2 snapshots")
            .stderr_contains("strata repair config");
    }
    env.strata(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
        .code(1)
        .stderr_contains("already holds a repository");
    assert!(!env.repo.join("config").exists(), "init wrote a config");
    assert_eq!(env.repo_files("keys").len(), 1, "init wrote a key");
    assert_eq!(env.repo_files("data"), packs);

    let out = env.strata(["repair", "config"]).success();
    assert!(
        out.stdout_str().contains("restored from the copy"),
        "{}",
        out.describe()
    );
    env.check_read_data_clean();
    for (id, content) in [(&first, &b"alpha\n"[..]), (&second, b"alpha, edited\n")] {
        let target = env.path(format!("restore-{id}"));
        env.restore(id, &target);
        let back = restored(&target, &src);
        assert_eq!(std::fs::read(back.join("a.txt")).unwrap(), content);
        assert_eq!(
            std::fs::read(back.join("b.bin")).unwrap(),
            random_bytes(7, 300_000)
        );
    }

    // One flipped byte in the only key file.
    let key = env.repo_files("keys").remove(0);
    let mut bytes = std::fs::read(&key).unwrap();
    bytes[60] ^= 1;
    std::fs::write(&key, bytes).unwrap();
    env.strata(["snapshots"])
        .code(1)
        .stderr_contains(&format!("keys/{} is damaged", file_name(&key)));
}
