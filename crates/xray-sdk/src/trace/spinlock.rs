//! The locks of the arena and of the buffer pool: spin, then yield.
//!
//! Both are held only while work runs that calls no user code and cannot panic on input:
//! changes copied into an arena, an arena handed over, a buffer pair taken from or given to
//! the pool. Well under a microsecond, so a waiter spins rather than parks, and a release
//! is a plain store. A parking mutex's release is an atomic exchange instead (it must look
//! for sleepers), which on x86 also waits for every store before it to complete. A request
//! takes the arena's lock once per subsegment begun or ended, and the pool's once per trace.
//!
//! A waiter spins up to [`SPINS`] times, then yields its processor on every further try, so
//! a holder that the scheduler preempted gets to finish.

use spin::mutex::{SpinMutex, SpinMutexGuard};

/// How many times a waiter spins before it yields its processor instead.
const SPINS: u32 = 100;

/// Takes `lock`: at once when it is free (one atomic compare-exchange), else by
/// [`lock_contended`].
#[inline]
pub(crate) fn lock<T>(lock: &SpinMutex<T>) -> SpinMutexGuard<'_, T> {
    match lock.try_lock_weak() {
        Some(guard) => guard,
        None => lock_contended(lock),
    }
}

#[cold]
#[inline(never)]
fn lock_contended<T>(lock: &SpinMutex<T>) -> SpinMutexGuard<'_, T> {
    let mut spins = 0u32;
    loop {
        // Read before trying again: waiters share the line instead of bouncing it.
        while lock.is_locked() {
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        if let Some(guard) = lock.try_lock() {
            return guard;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads that take one lock at once, often finding it held, each get it, and no
    /// increment made under it is lost.
    #[test]
    fn every_waiter_gets_the_lock_and_nothing_is_lost() {
        const THREADS: u64 = 4;
        const EACH: u64 = 50_000;
        let counter = SpinMutex::new(0u64);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..EACH {
                        let mut n = lock(&counter);
                        // A read and a write apart: a lost update shows if two held it.
                        let v = *n;
                        std::hint::black_box(&v);
                        *n = v + 1;
                    }
                });
            }
        });
        assert_eq!(*lock(&counter), THREADS * EACH);
    }
}
