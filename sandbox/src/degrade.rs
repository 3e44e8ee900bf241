//! Running with less than kiln asks for, inside containers: each fallback
//! keeps all the isolation the environment allows and says once what it
//! gave up.
//!
//! The sandbox init (one process per step) records what it had to do
//! without; it sends each note to kiln as a `W` record on the step's
//! socket, and kiln prints every distinct note once per run.

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Notes of this init process (one step), sent to kiln before its status.
static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Set when the step's root was entered with chroot instead of pivot_root:
/// the command must then not keep CAP_SYS_CHROOT (a chroot is escapable by
/// a process that can chroot again).
static CHROOTED: AtomicBool = AtomicBool::new(false);

/// Record a fallback taken in this step's init.
pub(crate) fn note(msg: impl Into<String>) {
    if let Ok(mut n) = NOTES.lock() {
        n.push(msg.into());
    }
}

/// The notes recorded so far, as `W` records.
pub(crate) fn take_notes() -> Vec<String> {
    NOTES
        .lock()
        .map(|mut n| std::mem::take(&mut *n))
        .unwrap_or_default()
}

/// Set when kiln runs in a user namespace it created: everything outside
/// it (the container's processes) is then out of a step's ptrace reach,
/// whatever /proc shows it.
static OWN_USERNS: AtomicBool = AtomicBool::new(false);

pub(crate) fn set_own_userns(own: bool) {
    OWN_USERNS.store(own, Ordering::Relaxed);
}

pub(crate) fn own_userns() -> bool {
    OWN_USERNS.load(Ordering::Relaxed)
}

pub(crate) fn set_chrooted() {
    CHROOTED.store(true, Ordering::Relaxed);
}

pub(crate) fn chrooted() -> bool {
    CHROOTED.load(Ordering::Relaxed)
}

/// Print a warning once per kiln process (a note repeated by every step
/// is said once).
pub(crate) fn warn_once(msg: &str) {
    static SAID: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let Ok(mut said) = SAID.lock() else { return };
    if said
        .get_or_insert_with(HashSet::new)
        .insert(msg.to_string())
    {
        // A closed or full stderr must not panic (the build goes on).
        let _ = writeln!(std::io::stderr(), "kiln: warning: {msg}");
    }
}

/// True when an error of the sandbox is the kernel refusing (EPERM).
pub(crate) fn is_eperm(e: rustix::io::Errno) -> bool {
    e == rustix::io::Errno::PERM
}
