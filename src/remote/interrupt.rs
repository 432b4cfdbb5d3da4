//! The program's one Ctrl-C handler. The first Ctrl-C lets hosts mid-step finish and report (killing the SSH
//! connections would cut their scripts short) and starts no new host; what the second one does (the binary ends
//! the program) is the caller's to say.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// Which Ctrl-C it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The stop is set: hosts mid-step finish, no new host starts.
    First,
    /// The user insists.
    Second,
}

/// Set once on Ctrl-C; every part of the program reads the same one.
#[derive(Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    changed: watch::Receiver<bool>,
    trigger: Arc<watch::Sender<bool>>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop::new()
    }
}

impl Stop {
    /// A stop that only [`Stop::trigger`] sets (tests, and before the handler is installed).
    pub fn new() -> Stop {
        let (tx, rx) = watch::channel(false);
        Stop { flag: Arc::new(AtomicBool::new(false)), changed: rx, trigger: Arc::new(tx) }
    }

    /// Installs the handler. Call once, at start. `notice` hears each Ctrl-C after the stop is set.
    pub fn install(notice: impl Fn(Notice) + Send + 'static) -> Stop {
        let stop = Stop::new();
        let s = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
                s.trigger();
                notice(Notice::First);
                let _ = tokio::signal::ctrl_c().await;
                notice(Notice::Second);
            });
        });
        stop
    }

    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.trigger.send(true);
    }

    pub fn stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves once Ctrl-C was pressed.
    pub async fn interrupted(&self) {
        let mut rx = self.changed.clone();
        let _ = rx.wait_for(|v| *v).await;
    }
}
