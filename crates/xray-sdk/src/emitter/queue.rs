//! The bounded queue between the threads that finish traces and the emitter thread.
//!
//! A producer pushes under a short lock and never waits for room: a full queue gives the item
//! back. The items the thread took and is still working on count against the capacity until
//! it comes back for more, so that the queue bounds every trace waiting to be sent.
//!
//! A producer wakes the thread only when the thread sleeps and something is worth waking
//! for: always when the thread sleeps without a deadline (nothing buffered, nothing recent);
//! when it sleeps until a deadline (work that comes due, or the end of a linger after recent
//! work), only once enough entities have arrived for what the exporter waits for, once half
//! the queue is full, or for a flush or a stop. A busy recorder therefore costs no system
//! call per trace: a wake-up (a futex call, and on a virtual machine an interrupt to an idle
//! processor: 17 µs of the request thread's time and more, measured on a 2-core virtual
//! machine) is left to the thread's own timer.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// How the thread is sleeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sleep {
    /// Not sleeping: it will look at the queue again before it sleeps.
    Awake,
    /// Until an item arrives.
    UntilWork,
    /// Until a deadline, or until `wake_at` entities or `wake_batches` items have arrived.
    UntilDue,
}

struct State<T> {
    items: VecDeque<T>,
    /// Entities in the items pushed since the thread last looked.
    entities: usize,
    sleep: Sleep,
    wake_at: usize,
    closed: bool,
    /// Items the thread took at its last take, which it may still be working on: they count
    /// against the capacity until it comes back for more.
    in_hand: usize,
    /// Items accepted that were not urgent: work, not the thread's control messages. Counted
    /// under the lock the push holds anyway, rather than with an atomic addition on a line
    /// that every producer and the thread's own counters share.
    pushed: u64,
}

/// What [`Queue::take_all`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Items were moved into the consumer's queue.
    Items,
    /// The deadline given passed with the queue empty.
    Due,
    /// The queue is closed and empty.
    Closed,
}

/// A bounded multi-producer queue with one consumer.
pub(crate) struct Queue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    capacity: usize,
    /// Queued items that wake a thread sleeping until a deadline.
    wake_batches: usize,
}

impl<T> Queue<T> {
    /// A queue holding at most `capacity` items.
    pub(crate) fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity.min(4096)),
                entities: 0,
                sleep: Sleep::Awake,
                wake_at: 1,
                in_hand: 0,
                closed: false,
                pushed: 0,
            }),
            ready: Condvar::new(),
            capacity,
            wake_batches: (capacity / 2).max(1),
        }
    }

    /// How many queued items wake a thread sleeping until a deadline: half the capacity, so
    /// that nothing is dropped for want of a wake-up. (Not fewer: past the buffer pool's
    /// 256 arenas a trace allocates its buffers, which costs far less than a wake-up.)
    #[cfg(test)]
    fn wake_batches(&self) -> usize {
        self.wake_batches
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing runs under this lock that can panic; a poisoned one is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `item`, which holds `entities` entities; `urgent` wakes the thread whatever it
    /// waits for, and is not counted in [`Queue::pushed`]. Gives the item back when the queue
    /// is full (with what the thread holds) or closed.
    pub(crate) fn push(&self, item: T, entities: usize, urgent: bool) -> Result<(), T> {
        let mut s = self.lock();
        if s.closed || s.items.len() + s.in_hand >= self.capacity {
            return Err(item);
        }
        s.items.push_back(item);
        s.pushed += u64::from(!urgent);
        s.entities = s.entities.saturating_add(entities);
        let wake = match s.sleep {
            Sleep::Awake => false,
            Sleep::UntilWork => true,
            Sleep::UntilDue => {
                urgent || s.entities >= s.wake_at || s.items.len() >= self.wake_batches
            }
        };
        if wake {
            s.sleep = Sleep::Awake;
            drop(s);
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Items accepted without `urgent` since the queue was made.
    pub(crate) fn pushed(&self) -> u64 {
        self.lock().pushed
    }

    /// Closes the queue: later pushes fail; the thread takes what is queued, then
    /// [`Taken::Closed`].
    pub(crate) fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.sleep = Sleep::Awake;
        drop(s);
        self.ready.notify_one();
    }

    /// Whether the queue was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Moves every queued item into `into` (which must be empty) at once, so that the thread
    /// takes the lock once per wake-up, not once per item, and producers rarely find it
    /// held. Sleeps while there is none: without a deadline until one arrives; with one,
    /// until it passes, until `wake_at` entities or `wake_batches` items have
    /// arrived, or something urgent. What `into` receives counts against the capacity until
    /// the next call (the thread has then finished with it): at most `capacity` items wait in
    /// the queue and the thread's hands together.
    pub(crate) fn take_all(
        &self,
        into: &mut VecDeque<T>,
        due: Option<Instant>,
        wake_at: usize,
    ) -> Taken {
        let mut s = self.lock();
        // `into` is empty: what the last call handed over is done with.
        s.in_hand = 0;
        loop {
            if !s.items.is_empty() {
                std::mem::swap(&mut s.items, into);
                s.in_hand = into.len();
                s.sleep = Sleep::Awake;
                s.entities = 0;
                return Taken::Items;
            }
            if s.closed {
                return Taken::Closed;
            }
            s.entities = 0;
            match due {
                None => {
                    s.sleep = Sleep::UntilWork;
                    s = self.ready.wait(s).unwrap_or_else(PoisonError::into_inner);
                }
                Some(due) => {
                    let now = Instant::now();
                    if now >= due {
                        s.sleep = Sleep::Awake;
                        return Taken::Due;
                    }
                    s.sleep = Sleep::UntilDue;
                    s.wake_at = wake_at.max(1);
                    s = self
                        .ready
                        .wait_timeout(s, due - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    impl<T> Queue<T> {
        /// The first item taken, the rest put back in front (for these tests): the thread then
        /// holds the one item, until the next call.
        fn pop(&self, due: Option<Instant>, wake_at: usize) -> Popped<T> {
            let mut got = VecDeque::new();
            match self.take_all(&mut got, due, wake_at) {
                Taken::Items => {
                    let first = got.pop_front().map(Popped::Item);
                    let mut s = self.lock();
                    while let Some(rest) = got.pop_back() {
                        s.items.push_front(rest);
                        s.in_hand -= 1;
                    }
                    first.unwrap_or(Popped::Due)
                }
                Taken::Due => Popped::Due,
                Taken::Closed => Popped::Closed,
            }
        }
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Popped<T> {
        Item(T),
        Due,
        Closed,
    }

    #[test]
    fn accepted_work_is_counted_and_urgent_or_refused_items_are_not() {
        let q = Queue::new(2);
        q.push(1, 1, false).unwrap();
        q.push(2, 1, true).unwrap();
        assert_eq!(q.push(3, 1, false), Err(3));
        assert_eq!(q.pushed(), 1);
        let mut taken = VecDeque::new();
        assert_eq!(q.take_all(&mut taken, None, 1), Taken::Items);
        // What the thread holds still counts, until it comes back for more.
        assert_eq!(q.push(4, 3, false), Err(4));
        taken.clear();
        assert_eq!(q.take_all(&mut taken, Some(Instant::now()), 1), Taken::Due);
        q.push(4, 3, false).unwrap();
        assert_eq!(q.pushed(), 2);
    }

    #[test]
    fn everything_queued_is_taken_at_once_in_order() {
        let q = Queue::new(8);
        for i in 0..5 {
            q.push(i, 1, false).unwrap();
        }
        let mut got = VecDeque::new();
        assert_eq!(q.take_all(&mut got, None, 1), Taken::Items);
        assert_eq!(got, [0, 1, 2, 3, 4]);
        // While the thread holds the five, the queue has room for three.
        for i in 0..3 {
            q.push(i, 1, false).unwrap();
        }
        assert_eq!(q.push(3, 1, false), Err(3));
        // Back for more, it takes the three; once it comes back again, the queue has room for
        // its whole capacity.
        got.clear();
        assert_eq!(q.take_all(&mut got, None, 1), Taken::Items);
        assert_eq!(got, [0, 1, 2]);
        got.clear();
        assert_eq!(q.take_all(&mut got, Some(Instant::now()), 1), Taken::Due);
        for i in 0..8 {
            q.push(i, 1, false).unwrap();
        }
        assert_eq!(q.push(8, 1, false), Err(8));
    }

    #[test]
    fn it_is_bounded_and_first_in_first_out() {
        let q = Queue::new(2);
        assert_eq!(q.push(1, 1, false), Ok(()));
        assert_eq!(q.push(2, 1, false), Ok(()));
        assert_eq!(q.push(3, 1, false), Err(3));
        assert_eq!(q.pop(None, 1), Popped::Item(1));
        // 2 waits and the thread holds 1: still full.
        assert_eq!(q.push(4, 1, false), Err(4));
        assert_eq!(q.pop(None, 1), Popped::Item(2));
        assert_eq!(q.push(4, 1, false), Ok(()));
        assert_eq!(q.pop(None, 1), Popped::Item(4));
        q.close();
        assert_eq!(q.push(5, 1, false), Err(5));
        assert_eq!(q.pop(None, 1), Popped::Closed);
    }

    #[test]
    fn what_was_queued_before_closing_is_still_taken() {
        let q = Queue::new(4);
        q.push("a", 1, false).unwrap();
        q.close();
        assert_eq!(q.pop(None, 1), Popped::Item("a"));
        assert_eq!(q.pop(None, 1), Popped::Closed);
    }

    #[test]
    fn a_deadline_with_nothing_queued_is_due() {
        let q: Queue<u8> = Queue::new(4);
        let t = Instant::now();
        assert_eq!(q.pop(Some(t + Duration::from_millis(30)), 10), Popped::Due);
        assert!(t.elapsed() >= Duration::from_millis(30));
    }

    /// A thread sleeping with nothing buffered is woken by the first item; one sleeping
    /// until its buffered work is due only once enough entities arrived, or by an urgent
    /// item, and otherwise at the deadline.
    #[test]
    fn a_thread_waiting_for_due_work_is_woken_by_enough_entities_or_urgency() {
        let q = Arc::new(Queue::new(64));
        let (tx, rx) = std::sync::mpsc::channel();
        let consumer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                // With nothing buffered: the first item wakes it.
                tx.send((q.pop(None, 1), Instant::now())).unwrap();
                // Work due in 10 s, woken after 3 entities.
                let due = Instant::now() + Duration::from_secs(10);
                for _ in 0..2 {
                    tx.send((q.pop(Some(due), 3), Instant::now())).unwrap();
                }
                tx.send((q.pop(Some(due), 100), Instant::now())).unwrap();
                // Due soon, nothing arrives.
                let soon = Instant::now() + Duration::from_millis(20);
                tx.send((q.pop(Some(soon), 100), Instant::now())).unwrap();
            })
        };
        let wait = Duration::from_secs(5);
        q.push(0, 1, false).unwrap();
        assert_eq!(rx.recv_timeout(wait).unwrap().0, Popped::Item(0));
        // Let it fall asleep until the work is due, then push two entities: not enough.
        std::thread::sleep(Duration::from_millis(50));
        q.push(1, 2, false).unwrap();
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "woken before enough entities arrived"
        );
        q.push(2, 1, false).unwrap();
        assert_eq!(rx.recv_timeout(wait).unwrap().0, Popped::Item(1));
        assert_eq!(rx.recv_timeout(wait).unwrap().0, Popped::Item(2));
        // Asleep again (100 entities wanted): an urgent item wakes it.
        std::thread::sleep(Duration::from_millis(50));
        q.push(3, 0, true).unwrap();
        assert_eq!(rx.recv_timeout(wait).unwrap().0, Popped::Item(3));
        assert_eq!(rx.recv_timeout(wait).unwrap().0, Popped::Due);
        consumer.join().unwrap();
    }

    /// A thread sleeping until a deadline is woken once `wake_batches` items wait, however
    /// few entities they hold.
    #[test]
    fn enough_queued_items_wake_a_thread_waiting_for_a_deadline() {
        let q = Arc::new(Queue::new(16));
        assert_eq!(q.wake_batches(), 8, "half the capacity");
        let (tx, rx) = std::sync::mpsc::channel();
        let consumer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                let mut got = VecDeque::new();
                let due = Instant::now() + Duration::from_secs(10);
                let taken = q.take_all(&mut got, Some(due), usize::MAX);
                tx.send((taken, got.len())).unwrap();
            })
        };
        let asleep = Instant::now() + Duration::from_secs(5);
        while q.lock().sleep != Sleep::UntilDue && Instant::now() < asleep {
            std::thread::sleep(Duration::from_millis(1));
        }
        for i in 0..7 {
            q.push(i, 1, false).unwrap();
        }
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "woken before enough items arrived"
        );
        q.push(7, 1, false).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            (Taken::Items, 8)
        );
        consumer.join().unwrap();
        assert_eq!(Queue::<u8>::new(8192).wake_batches(), 4096);
        assert_eq!(Queue::<u8>::new(1).wake_batches(), 1);
    }
}
