//! `strata notify test NAME`: a test message to one channel of strata.toml, now.

use anyhow::Result;
use strata_app::ops::Event;

use crate::{exit, Cli};

/// Send a test message to a notification channel of strata.toml.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Subcommand,
}

#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Send a test notice to the channel NAME now, whatever its `on` list says, with the
    /// usual retries; print "sent", or the error and exit 1.
    Test(TestArgs),
}

#[derive(Debug, clap::Args)]
struct TestArgs {
    /// The notification's name in strata.toml ([notifications.NAME]).
    name: String,

    /// The event to send: start, failure, warning, recovered, success, restore or
    /// restore-test (a ping sends start to URL/start, failure to URL/fail, success and
    /// recovered to URL).
    #[arg(long, default_value = "failure", value_parser = parse_event)]
    event: Event,
}

fn parse_event(s: &str) -> std::result::Result<Event, String> {
    Event::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
        format!("not an event; one of {}", names.join(", "))
    })
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    match &args.command {
        Subcommand::Test(t) => {
            let cfg = strata_app::config::load(cli.config.as_deref())?;
            match strata_app::notify::send_test(&cfg, &t.name, t.event) {
                Ok(()) => {
                    println!("sent");
                    Ok(exit::OK)
                }
                Err(e) => {
                    eprintln!("strata: {e}");
                    Ok(exit::FATAL)
                }
            }
        }
    }
}
