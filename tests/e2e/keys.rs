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
