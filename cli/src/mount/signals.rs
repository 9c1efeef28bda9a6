//! Waiting for SIGINT, SIGTERM or SIGHUP, or for the FUSE session to end, whichever comes
//! first. `signal-hook` turns the signals into messages on a thread of its own (its handler
//! only writes to a self-pipe), and the session thread reports its end on the same channel.
//! Signals can arrive on any thread, including the storage runtime's, so nothing here
//! depends on signal masks.

use std::sync::mpsc::{channel, Receiver, Sender};

use nix::sys::signal::Signal;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// What ended the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A signal (its number) asked to unmount.
    Signal(i32),
    /// The session ended by itself: the file system was unmounted from outside.
    Ended,
}

/// Where the events arrive.
pub struct Signals {
    events: Receiver<Event>,
    sender: Sender<Event>,
}

/// Tells the waiter that the session ended.
pub struct Notifier {
    sender: Sender<Event>,
}

impl Notifier {
    pub fn ended(&self) {
        // The waiter may be gone already (it stopped waiting): nothing to tell then.
        let _ = self.sender.send(Event::Ended);
    }
}

impl Signals {
    /// Starts listening for the signals that unmount.
    pub fn install() -> std::io::Result<Signals> {
        let (sender, events) = channel();
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        let forward = sender.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if forward.send(Event::Signal(sig)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Signals { events, sender })
    }

    /// A handle for the session thread to report its end.
    pub fn notifier(&self) -> std::io::Result<Notifier> {
        Ok(Notifier {
            sender: self.sender.clone(),
        })
    }

    /// Blocks until a signal arrives or the session ends.
    pub fn wait(&mut self) -> std::io::Result<Event> {
        self.events
            .recv()
            .map_err(|_| std::io::Error::other("the signal listener stopped"))
    }
}

/// The name of a signal number, for messages.
pub fn name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}
