//! Keeping the status page's heap near what it holds. glibc's malloc gives
//! each thread that meets a locked arena one of its own (up to eight a
//! core), and a refresh parses Prometheus' answers on whichever worker runs
//! it, so at fleet scale the freed answers leave several arenas of pages
//! the process keeps. Two arenas and a trim after each refresh keep the RSS
//! at the live set plus one refresh's answers (`docs/benchmarks.md`, "Fleet
//! status page"). Elsewhere than glibc, both are no-ops.
#![allow(unsafe_code)]

/// The most malloc arenas the status page uses.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 2;

/// Limits malloc to [`ARENAS`] arenas; call before the runtime's threads
/// start, so that none has made its own.
pub(crate) fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of glibc's malloc, under its own
    // lock; no pointer is passed.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Gives the free pages of every arena back to the kernel.
pub(crate) fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes each arena's lock while it releases free
    // pages; no pointer is passed and nothing allocated moves.
    unsafe {
        libc::malloc_trim(0);
    }
}
