//! What makes `strata run --due` run every few minutes: a systemd service and timer, or a
//! line for `/etc/cron.d`. Each project's own schedule is judged by `run --due` itself
//! (against its last recorded run), so the timer only has to wake it often; a run missed
//! while the machine was off is caught up once (`Persistent=true` for systemd; for cron,
//! the next wake-up five minutes later does it).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One unit file: its name (`strata.service`) and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    pub name: &'static str,
    pub text: String,
}

/// Where systemd units are installed by default.
pub const SYSTEMD_DIR: &str = "/etc/systemd/system";

/// How the timer wakes strata: every five minutes.
pub const ON_CALENDAR: &str = "*:0/5";

/// `bin` and `config` as one command line that `sh` and systemd both read back as the
/// same words: a word with anything but `[A-Za-z0-9/._:=@+-]` is single-quoted.
fn command_line(bin: &Path, config: &Path) -> String {
    [
        bin.to_string_lossy().as_ref(),
        "--config",
        config.to_string_lossy().as_ref(),
        "run",
        "--due",
    ]
    .iter()
    .map(|w| quote(w))
    .collect::<Vec<_>>()
    .join(" ")
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._:=@+-".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The service and the timer that run `bin --config config run --due` every five minutes.
pub fn systemd_units(bin: &Path, config: &Path) -> Vec<Unit> {
    let command = command_line(bin, config);
    let service = format!(
        "[Unit]\n\
         Description=Strata: back up the projects of {config} that are due\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={command}\n\
         Nice=10\n\
         IOSchedulingClass=best-effort\n\
         IOSchedulingPriority=7\n",
        config = config.display()
    );
    let timer = format!(
        "[Unit]\n\
         Description=Run strata run --due every five minutes\n\
         \n\
         [Timer]\n\
         OnCalendar={ON_CALENDAR}\n\
         Persistent=true\n\
         RandomizedDelaySec=30\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    );
    vec![
        Unit {
            name: "strata.service",
            text: service,
        },
        Unit {
            name: "strata.timer",
            text: timer,
        },
    ]
}

/// The line for `/etc/cron.d/strata`: every five minutes, as `user`.
pub fn cron_line(bin: &Path, config: &Path, user: &str) -> String {
    format!("*/5 * * * * {user} {}\n", command_line(bin, config))
}

/// What can go wrong installing the units.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The units are written, but systemctl could not load or start them.
    #[error("the units are written, but `systemctl {args}` failed: {why}")]
    Systemctl { args: String, why: String },
}

/// Writes `units` into `dir` (each atomically: a temporary file, synced, renamed over the
/// old one; mode 0644), then unless `enable` is false runs `systemctl daemon-reload` and
/// `systemctl enable --now strata.timer`. Returns the files written.
pub fn install_systemd(
    dir: &Path,
    units: &[Unit],
    enable: bool,
) -> Result<Vec<PathBuf>, InstallError> {
    let mut written = Vec::new();
    for unit in units {
        let path = dir.join(unit.name);
        write_atomically(&path, unit.text.as_bytes()).map_err(|source| InstallError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    if enable {
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", "--now", "strata.timer"])?;
    }
    Ok(written)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory is.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn systemctl(args: &[&str]) -> Result<(), InstallError> {
    let failed = |why: String| InstallError::Systemctl {
        args: args.join(" "),
        why,
    };
    let out = Command::new("systemctl").args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            failed(
                "systemctl is not installed (no systemd here?): use `strata schedule print \
                 --cron` for a crontab line instead, or --no-enable"
                    .to_string(),
            )
        } else {
            failed(e.to_string())
        }
    })?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let said: Vec<&str> = said
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        return Err(failed(format!("{} ({})", said.join("; "), out.status)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_with_spaces_or_quotes_are_quoted() {
        let line = command_line(
            Path::new("/usr/bin/strata"),
            Path::new("/etc/my conf/it's.toml"),
        );
        assert_eq!(
            line,
            r"/usr/bin/strata --config '/etc/my conf/it'\''s.toml' run --due"
        );
    }
}
