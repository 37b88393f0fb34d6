//! The SDK's background thread, `xray-background`: one per process, started with the first
//! job, for the work that is neither on the request path nor the emitter's: the sampling
//! pollers' calls to the daemon and the plugins' metadata look-ups.
//!
//! Jobs run one at a time, each when its deadline comes, and each says when it wants to run
//! next. Between deadlines the thread waits on a condition variable with the time to the next
//! deadline as its timeout; with no job it waits without one, so a process with nothing due
//! costs no wake-ups. A job holds only weak references to what it works for, and is dropped
//! when it says it is done or when its [`JobHandle`] is dropped (its owner is gone), at once
//! if it is waiting, after its run if it is running.
//!
//! The jobs' calls are blocking, with short timeouts: a job that waits on a dead endpoint
//! delays the others by at most that long. Nothing on the request path ever waits for them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

/// The thread's name, as `/proc/<pid>/task/*/comm` and debuggers show it (15 bytes, the
/// most Linux keeps).
pub(crate) const THREAD_NAME: &str = "xray-background";

/// Work for the background thread.
pub(crate) trait Job: Send + 'static {
    /// Runs the job once; returns when to run it next, or `None` when it is finished.
    fn run(&mut self) -> Option<Instant>;
}

/// Runs `job` on the background thread at `due`, and then whenever it asks, until it is
/// finished or the returned handle is dropped. Starts the thread if this process has none
/// yet; the error is the thread's failure to start (the job is then dropped).
pub(crate) fn schedule(job: Box<dyn Job>, due: Instant) -> std::io::Result<JobHandle> {
    let scheduler = scheduler();
    let mut state = scheduler.lock();
    let process = std::process::id();
    // A forked child inherits the state but not the thread.
    if state.thread_of != Some(process) {
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(run_jobs)?;
        state.thread_of = Some(process);
    }
    state.next_id += 1;
    let id = state.next_id;
    state.jobs.push(Entry { id, due, job });
    drop(state);
    scheduler.wake.notify_one();
    Ok(JobHandle { id })
}

/// Cancels its job when dropped.
#[derive(Debug)]
#[must_use = "dropping the handle cancels the job; detach() lets it run to its end"]
pub(crate) struct JobHandle {
    id: u64,
}

impl JobHandle {
    /// Lets the job run until it says it is finished.
    pub(crate) fn detach(self) {
        std::mem::forget(self);
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        let scheduler = scheduler();
        let mut state = scheduler.lock();
        let removed = state
            .jobs
            .iter()
            .position(|e| e.id == self.id)
            .map(|i| state.jobs.swap_remove(i));
        if let Some(running) = &mut state.running
            && running.id == self.id
        {
            running.cancelled = true;
        }
        drop(state);
        // Outside the lock: dropping a job drops what it holds.
        drop(removed);
    }
}

struct Scheduler {
    state: Mutex<State>,
    wake: Condvar,
}

impl Scheduler {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct State {
    /// The waiting jobs, in no order (a process has a handful).
    jobs: Vec<Entry>,
    next_id: u64,
    running: Option<Running>,
    /// The process whose background thread runs the jobs.
    thread_of: Option<u32>,
}

struct Entry {
    id: u64,
    due: Instant,
    job: Box<dyn Job>,
}

/// The job being run, and whether its handle was dropped meanwhile.
struct Running {
    id: u64,
    cancelled: bool,
}

fn scheduler() -> &'static Scheduler {
    static SCHEDULER: OnceLock<Scheduler> = OnceLock::new();
    SCHEDULER.get_or_init(|| Scheduler {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
    })
}

/// The thread's loop: waits for the earliest deadline, runs that job outside the lock, puts
/// it back with its next deadline.
fn run_jobs() {
    let scheduler = scheduler();
    let mut state = scheduler.lock();
    loop {
        let earliest = state
            .jobs
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.due)
            .map(|(i, e)| (i, e.due));
        let Some((index, due)) = earliest else {
            state = scheduler
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        let now = Instant::now();
        if due > now {
            state = scheduler
                .wake
                .wait_timeout(state, due - now)
                .map_or_else(|e| e.into_inner().0, |(guard, _)| guard);
            continue;
        }
        let mut entry = state.jobs.swap_remove(index);
        state.running = Some(Running {
            id: entry.id,
            cancelled: false,
        });
        drop(state);
        let next = catch_unwind(AssertUnwindSafe(|| entry.job.run())).unwrap_or_else(|_| {
            tracing::error!("an X-Ray background job panicked; it is stopped");
            None
        });
        state = scheduler.lock();
        let cancelled = state.running.take().is_some_and(|r| r.cancelled);
        match next {
            Some(due) if !cancelled => {
                entry.due = due;
                state.jobs.push(entry);
            }
            _ => {
                drop(state);
                drop(entry);
                state = scheduler.lock();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::{Arc, Weak};
    use std::time::Duration;

    /// Reports each run on `runs`, then runs again after `every` until `left` runs are done.
    struct Every {
        name: &'static str,
        every: Duration,
        left: u32,
        runs: mpsc::Sender<&'static str>,
        _alive: Arc<()>,
    }

    impl Job for Every {
        fn run(&mut self) -> Option<Instant> {
            let _ = self.runs.send(self.name);
            self.left = self.left.checked_sub(1)?;
            (self.left > 0).then(|| Instant::now() + self.every)
        }
    }

    fn every(
        name: &'static str,
        every: Duration,
        left: u32,
        runs: &mpsc::Sender<&'static str>,
    ) -> (Box<dyn Job>, Weak<()>) {
        let alive = Arc::new(());
        let weak = Arc::downgrade(&alive);
        let job = Every {
            name,
            every,
            left,
            runs: runs.clone(),
            _alive: alive,
        };
        (Box::new(job), weak)
    }

    fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn jobs_run_by_deadline_and_are_dropped_when_finished() {
        let (tx, rx) = mpsc::channel();
        let now = Instant::now();
        let (late, late_alive) = every("late", Duration::ZERO, 1, &tx);
        let (early, early_alive) = every("early", Duration::from_millis(30), 3, &tx);
        schedule(late, now + Duration::from_millis(200))
            .expect("thread")
            .detach();
        schedule(early, now).expect("thread").detach();
        let order: Vec<&str> = (0..4)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("a run"))
            .collect();
        assert_eq!(order, ["early", "early", "early", "late"]);
        assert!(now.elapsed() >= Duration::from_millis(200));
        wait_until("finished jobs dropped", || {
            early_alive.upgrade().is_none() && late_alive.upgrade().is_none()
        });
    }

    #[test]
    fn dropping_the_handle_drops_the_job() {
        let (tx, rx) = mpsc::channel();
        // Waiting for a deadline an hour away: dropped at once.
        let (idle, idle_alive) = every("idle", Duration::ZERO, 1, &tx);
        let handle = schedule(idle, Instant::now() + Duration::from_secs(3600)).expect("thread");
        assert!(idle_alive.upgrade().is_some());
        drop(handle);
        assert!(idle_alive.upgrade().is_none());
        // Running every 10 ms: stops after the run in progress, if any.
        let (busy, busy_alive) = every("busy", Duration::from_millis(10), u32::MAX, &tx);
        let handle = schedule(busy, Instant::now()).expect("thread");
        rx.recv_timeout(Duration::from_secs(10)).expect("a run");
        drop(handle);
        wait_until("the job dropped", || busy_alive.upgrade().is_none());
        while rx.try_recv().is_ok() {}
        std::thread::sleep(Duration::from_millis(50));
        assert!(rx.try_recv().is_err(), "ran after its handle was dropped");
    }

    struct Panics;

    impl Job for Panics {
        fn run(&mut self) -> Option<Instant> {
            panic!("a job that panics");
        }
    }

    #[test]
    fn a_job_that_panics_stops_alone() {
        schedule(Box::new(Panics), Instant::now())
            .expect("thread")
            .detach();
        let (tx, rx) = mpsc::channel();
        let (job, _alive) = every("after", Duration::ZERO, 1, &tx);
        schedule(job, Instant::now() + Duration::from_millis(20))
            .expect("thread")
            .detach();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok("after"));
    }
}
