//! A counting global allocator with a limit on live bytes.
//!
//! A parser that trusts a size field of its input allocates what the input says: under a
//! plain `ulimit -v` that is an abort with no word of which input did it. This allocator
//! counts live bytes; an allocation that would pass the limit set with [`set_limit`] is
//! refused (null, so `Vec::try_reserve` callers see an error and infallible callers abort),
//! and before refusing it records the event ([`take_limit_hit`]) and saves the input being
//! run to the file named with [`arm`], so even an abort leaves the culprit on disk.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The allocator: [`System`] plus counting and the limit.
#[derive(Debug)]
pub struct LimitAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
static HIT: AtomicUsize = AtomicUsize::new(0);
static IN_HOOK: AtomicBool = AtomicBool::new(false);

/// The input being run and where to save it if the limit is hit.
static ARMED: Mutex<Option<(PathBuf, Vec<u8>)>> = Mutex::new(None);

/// Sets the limit on live heap bytes (`usize::MAX`: none).
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::SeqCst);
}

/// Live heap bytes now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Names the input being run (copied) and the file to write it to should the limit be hit;
/// `None` disarms.
pub fn arm(slot: Option<(PathBuf, Vec<u8>)>) {
    // The copy was made by the caller, outside the lock: nothing allocates while it is held.
    let old = {
        let mut guard = ARMED.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *guard, slot)
    };
    drop(old);
}

/// The size of the largest refused allocation since the last call (0: none), and resets it.
pub fn take_limit_hit() -> usize {
    HIT.swap(0, Ordering::SeqCst)
}

/// Writes the armed input to its file (for the hang watchdog); its path if written.
pub fn save_armed() -> Option<PathBuf> {
    let guard = ARMED.try_lock().ok()?;
    let (path, input) = guard.as_ref()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok()?;
    }
    std::fs::write(path, input).ok()?;
    Some(path.clone())
}

/// Records a refused allocation of `size` bytes: prints it, saves the armed input.
#[cold]
fn limit_hit(size: usize) {
    HIT.fetch_max(size, Ordering::SeqCst);
    if IN_HOOK.swap(true, Ordering::SeqCst) {
        return;
    }
    let live = LIVE.load(Ordering::Relaxed);
    let limit = LIMIT.load(Ordering::Relaxed);
    let _ = writeln!(
        std::io::stderr(),
        "advclust-fuzz: refused an allocation of {size} bytes ({live} live, limit {limit})"
    );
    if let Ok(guard) = ARMED.try_lock()
        && let Some((path, input)) = guard.as_ref()
    {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if std::fs::write(path, input).is_ok() {
            let _ = writeln!(
                std::io::stderr(),
                "advclust-fuzz: input saved to {}",
                path.display()
            );
        }
    }
    IN_HOOK.store(false, Ordering::SeqCst);
}

/// Whether `size` more bytes fit under the limit (always, inside the hook itself).
fn admit(size: usize) -> bool {
    let limit = LIMIT.load(Ordering::Relaxed);
    if limit == usize::MAX || IN_HOOK.load(Ordering::Relaxed) {
        return true;
    }
    if LIVE.load(Ordering::Relaxed).saturating_add(size) > limit {
        limit_hit(size);
        return false;
    }
    true
}

// SAFETY: every method forwards to `System` with the caller's layout and pointer unchanged;
// the bookkeeping only adds and subtracts sizes and never touches the memory.
unsafe impl GlobalAlloc for LimitAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !admit(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= old {
                LIVE.fetch_add(new_size - old, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(old - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_past_the_limit_is_refused_and_recorded() {
        let _serial = crate::GLOBAL_STATE_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        take_limit_hit();
        set_limit(live().saturating_add(256 << 20));
        let mut v: Vec<u8> = Vec::new();
        let refused = v.try_reserve_exact(1 << 30).is_err();
        set_limit(usize::MAX);
        assert!(refused);
        assert!(take_limit_hit() >= 1 << 30);
        assert_eq!(take_limit_hit(), 0);
        assert!(v.try_reserve_exact(1 << 20).is_ok());
    }
}
