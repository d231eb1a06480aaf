//! Crash containment for the threads the server cannot run without: the
//! media workers (their sessions' packet state), the DTLS handshake
//! threads (every new connection) and the control thread (the API). A
//! panic that escapes one of them would leave a half-alive server: its
//! sessions gone, nothing connecting, `/metrics` still answering. So a
//! panic there is logged at ERROR with the thread's name, counted, and the
//! process exits with [`EXIT_PANIC`]; the supervisor (systemd's
//! `Restart=on-failure` in `deploy/switchboard.service`) starts it again.
//!
//! Panics that a thread contains itself (one event, one association, one
//! tick) are counted here too ([`note_contained`]) and the thread goes on.
//!
//! Where it sits: around each thread's run loop, nothing per packet.

use std::sync::atomic::{AtomicU64, Ordering};

/// The exit status after a critical thread panicked (EX_SOFTWARE).
pub const EXIT_PANIC: i32 = 70;

/// Panics in the process, contained or not (`switchboard_panics_total`).
static PANICS: AtomicU64 = AtomicU64::new(0);

/// Panics so far, contained or not.
pub fn panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

/// Counts and logs a panic that its thread contained (`what` says where).
pub fn note_contained(what: &str, payload: &(dyn std::any::Any + Send)) {
    PANICS.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        thread = std::thread::current().name().unwrap_or("?"),
        panic = message(payload),
        "panic contained in {what}"
    );
}

/// Spawns a thread the server cannot run without: a panic that escapes
/// `run` ends the process with [`EXIT_PANIC`].
pub fn spawn_critical<F>(name: String, run: F) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    spawn_critical_with(name, run, |_| std::process::exit(EXIT_PANIC))
}

/// [`spawn_critical`] with what to do after the panic was logged and
/// counted (the process exits; tests observe).
pub fn spawn_critical_with<F, E>(
    name: String,
    run: F,
    on_panic: E,
) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
    E: FnOnce(&str) + Send + 'static,
{
    std::thread::Builder::new().name(name.clone()).spawn(move || {
        if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            PANICS.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                thread = %name,
                panic = message(payload.as_ref()),
                exit = EXIT_PANIC,
                "a thread the server cannot run without panicked; exiting for the supervisor to restart"
            );
            on_panic(&name);
        }
    })
}

/// A panic's message, when it has one.
fn message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_critical_thread_that_panics_is_named_counted_and_ends_the_process() {
        let before = panics();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = spawn_critical_with(
            "media-7".into(),
            || panic!("a bug"),
            move |name| tx.send(name.to_owned()).unwrap(),
        )
        .unwrap();
        t.join().unwrap();
        assert_eq!(rx.recv().unwrap(), "media-7");
        assert!(panics() > before);
    }

    #[test]
    fn a_critical_thread_that_returns_ends_nothing() {
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let t = spawn_critical_with(
            "dtls-0".into(),
            || {},
            move |name| tx.send(name.to_owned()).unwrap(),
        )
        .unwrap();
        t.join().unwrap();
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn messages_of_both_panic_kinds_are_read() {
        let s = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(message(s.as_ref()), "static");
        let n = 3;
        let f = std::panic::catch_unwind(move || panic!("formatted {n}")).unwrap_err();
        assert_eq!(message(f.as_ref()), "formatted 3");
    }
}
