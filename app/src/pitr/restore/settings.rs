//! What a restored data directory gets to recover: `recovery.signal`, and in
//! `postgresql.auto.conf` a `restore_command` running this strata's `pg wal-fetch`, quoted
//! for the shell PostgreSQL runs it with and for the config file it is written in.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use jiff::Timestamp;

use super::super::base::BaseBackup;
use super::super::timeline;
use super::{io, RecoveryAction};
use crate::{AppError, Result};

/// `s` as one word for `sh` (PostgreSQL runs `restore_command` with `system()`), quoted
/// only when it needs to be.
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `s` as a string of postgresql.conf: single quotes doubled, backslashes too.
pub fn conf_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', r"\\").replace('\'', "''"))
}

/// The lines appended to `postgresql.auto.conf`: `restore_command` running this strata's
/// `pg wal-fetch` with this config, the target time (none: to the end of the archive),
/// the timeline (always explicit), the action at the target, and unless `archive`,
/// `archive_mode = off`: a restored copy that archived would push its own new timeline
/// into the project's archive, which a later restore to `latest` would then follow.
pub fn recovery_settings(
    strata_bin: &Path,
    config: &Path,
    project: &str,
    target: Option<Timestamp>,
    timeline: u32,
    action: RecoveryAction,
    archive: bool,
) -> Result<String> {
    let text = |p: &Path| {
        p.to_str().map(str::to_string).ok_or_else(|| {
            AppError::Invalid(format!(
                "{} is not UTF-8: it cannot go into restore_command",
                p.display()
            ))
        })
    };
    // %f and %p are PostgreSQL's; a % of our own is written %%.
    let word = |s: &str| shell_word(s).replace('%', "%%");
    let command = format!(
        "{} --config {} pg wal-fetch --project {} %f %p",
        word(&text(strata_bin)?),
        word(&text(config)?),
        word(project)
    );
    let mut out = String::from("\n# Added by strata pg restore\n");
    out.push_str(&format!("restore_command = {}\n", conf_string(&command)));
    if let Some(t) = target {
        out.push_str(&format!(
            "recovery_target_time = {}\n",
            conf_string(&timeline::recovery_time_text(t))
        ));
        out.push_str(&format!(
            "recovery_target_action = {}\n",
            conf_string(action.as_str())
        ));
    }
    out.push_str(&format!("recovery_target_timeline = '{timeline}'\n"));
    if !archive {
        out.push_str(
            "# A copy: it archives nothing (strata pg restore --archive for a new primary)\n\
             archive_mode = 'off'\n",
        );
    }
    Ok(out)
}

/// Writes `recovery.signal` and appends `settings` to `postgresql.auto.conf`, both the data
/// directory's owner's (PostgreSQL refuses files it cannot read).
pub(super) fn write_recovery(dir: &Path, settings: &str, b: &BaseBackup) -> Result<()> {
    let md = std::fs::metadata(dir).map_err(|e| io(dir, e))?;
    let own = |p: &Path| -> Result<()> {
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(p, Some(md.uid()), Some(md.gid())).map_err(|e| io(p, e))?;
        }
        Ok(())
    };
    let signal = dir.join("recovery.signal");
    std::fs::write(&signal, b"").map_err(|e| io(&signal, e))?;
    own(&signal)?;
    let auto = dir.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&auto)
        .map_err(|e| io(&auto, e))?;
    f.write_all(
        settings
            .replace(
                "# Added by strata pg restore\n",
                &format!(
                    "# Added by strata pg restore (base backup {})\n",
                    b.snapshot.short()
                ),
            )
            .as_bytes(),
    )
    .and_then(|()| f.sync_all())
    .map_err(|e| io(&auto, e))?;
    own(&auto)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_command_is_quoted_for_the_shell_and_the_config_file() {
        let s = recovery_settings(
            Path::new("/usr/bin/strata"),
            Path::new("/etc/strata/strata.toml"),
            "shop",
            Some(timeline::parse_target_time("2026-12-06 14:03:27+01").unwrap()),
            2,
            RecoveryAction::Promote,
            true,
        )
        .unwrap();
        assert!(
            s.contains(
                "restore_command = '/usr/bin/strata --config /etc/strata/strata.toml pg wal-fetch \
             --project shop %f %p'\n"
            ),
            "{s}"
        );
        assert!(
            s.contains("recovery_target_time = '2026-12-06 13:03:27.000000+00'\n"),
            "{s}"
        );
        assert!(s.contains("recovery_target_timeline = '2'\n"), "{s}");
        assert!(s.contains("recovery_target_action = 'promote'\n"), "{s}");
        assert!(!s.contains("archive_mode"), "{s}");
        // A path with a quote, a space, a backslash and a percent sign: one shell word,
        // its % doubled for PostgreSQL, its quotes doubled and backslash escaped for the
        // config file.
        let s = recovery_settings(
            Path::new("/opt/it's here/strata"),
            Path::new("/etc/100%\\x.toml"),
            "shop",
            None,
            1,
            RecoveryAction::Pause,
            false,
        )
        .unwrap();
        assert!(
            s.contains(
                r"restore_command = '''/opt/it''\\''''s here/strata'' --config ''/etc/100%%\\x.toml'' pg wal-fetch --project shop %f %p'"
            ),
            "{s}"
        );
        assert!(!s.contains("recovery_target_time ="), "{s}");
        assert!(!s.contains("recovery_target_action"), "{s}");
        assert!(s.ends_with("archive_mode = 'off'\n"), "{s}");
        assert!(s.contains("recovery_target_timeline = '1'\n"), "{s}");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
