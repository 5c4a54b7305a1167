//! A team of spinning threads for the short parallel loops of a decode step (the GEMVs of
//! the small projections, split-KV attention), where rayon's fork-join costs as much as the
//! work: a 192 x 576 bf16 GEMV (221 KB, about 5 us of memory traffic) took as long on two
//! threads as on one (SmolLM2, `IRIS_PROFILE=1`).
//!
//! The team is `rayon::current_num_threads() - 1` threads started at first use and kept for
//! the process. Between loops each spins on an epoch counter, so a loop starts on every
//! thread within a fraction of a microsecond, with no system call and no allocation; after
//! `SPIN_FOR` without work it parks, and the next loop unparks it (one wake-up, then
//! spinning again). The caller runs tasks too, and returns once every task has been taken
//! and every thread that joined the loop has left it: a thread that arrives after the last
//! task was taken stays out, so a loop never waits for a thread the OS has not scheduled
//! (with more threads than cores, waiting for all of them made a decode step take a second).
//! Idle threads spin hot for `HOT_SPIN`, then yield between spins; the team is never
//! larger than the CPU count.
//!
//! Each thread first takes the tasks of its own contiguous share, in order, then helps with
//! the others'. Handing tasks out round-robin instead cut every thread's stream of weights
//! into short runs, and the larger decode GEMVs lost 10-15% of their bandwidth to it.
//!
//! One loop runs at a time. A loop asked for while another runs (from another thread, or
//! from inside a task) runs on its caller alone: correct, only not parallel. A panic in a
//! task is caught on the thread that ran it and re-raised on the caller.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, TryLockError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long an idle team thread spins without giving its core away (the gaps between the
/// loops of a decode step are shorter).
const HOT_SPIN: Duration = Duration::from_micros(50);
/// How long an idle team thread spins, yielding, before it parks.
const SPIN_FOR: Duration = Duration::from_millis(2);

type Task<'a> = dyn Fn(usize) + Sync + 'a;

/// The loop being run: its body and task count. Lives on the caller's stack for the loop.
struct Job<'a> {
    body: &'a Task<'a>,
    tasks: usize,
}

/// A share's next task, on its own cache line.
#[repr(align(128))]
struct Cursor(AtomicUsize);

/// The bit of `Shared::active` that closes a loop to late arrivals.
const CLOSED: usize = 1 << (usize::BITS - 1);

struct Shared {
    /// Bumped (SeqCst) to publish a loop in `job`.
    epoch: AtomicU64,
    /// The current `Job`, type-erased; valid while `active` is open or counts a thread.
    job: AtomicPtr<()>,
    /// Per thread (the caller first): the next task of its share, counted from the share's
    /// start.
    next: Vec<Cursor>,
    /// Team threads inside the current loop, plus `CLOSED` between loops. A thread joins by
    /// adding one; if the sum it added to had `CLOSED`, it takes its one back and stays out.
    active: AtomicUsize,
    /// Team threads parked or about to park.
    sleeping: AtomicUsize,
    panicked: AtomicBool,
}

struct Team {
    shared: &'static Shared,
    threads: Vec<Thread>,
    /// Held while a loop runs.
    running: Mutex<()>,
}

static TEAM: OnceLock<Team> = OnceLock::new();

/// Runs `body(t)` for every `t < tasks`, spread over the team and the calling thread.
pub fn for_each(tasks: usize, body: &(dyn Fn(usize) + Sync)) {
    let team = TEAM.get_or_init(Team::start);
    if tasks <= 1 || team.threads.is_empty() {
        return (0..tasks).for_each(body);
    }
    // A panic re-raised by an earlier loop poisons the lock; the team itself is sound.
    let _running = match team.running.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return (0..tasks).for_each(body),
    };
    team.run(tasks, body);
}

/// Threads of the team, the caller included.
pub fn threads() -> usize {
    TEAM.get_or_init(Team::start).threads.len() + 1
}

impl Team {
    fn start() -> Team {
        let cpus = thread::available_parallelism().map_or(1, |n| n.get());
        let helpers = rayon::current_num_threads().min(cpus).saturating_sub(1);
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            epoch: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            next: (0..=helpers).map(|_| Cursor(AtomicUsize::new(0))).collect(),
            active: AtomicUsize::new(CLOSED),
            sleeping: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        }));
        let threads = (0..helpers)
            .filter_map(|i| {
                thread::Builder::new()
                    .name(format!("iris-team-{i}"))
                    .spawn(move || member(shared, i + 1))
                    .ok()
                    .map(|handle| handle.thread().clone())
            })
            .collect();
        Team {
            shared,
            threads,
            running: Mutex::new(()),
        }
    }

    fn run(&self, tasks: usize, body: &Task) {
        let s = self.shared;
        let job = Job { body, tasks };
        // No team thread is inside a loop here (the last one drained `active`).
        s.next.iter().for_each(|c| c.0.store(0, Ordering::Relaxed));
        s.panicked.store(false, Ordering::Relaxed);
        s.job
            .store(&job as *const Job as *mut (), Ordering::Relaxed);
        // Open (keeping the count of late arrivals from the last loop, which are backing
        // out), then announce.
        s.active.fetch_and(!CLOSED, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        if s.sleeping.load(Ordering::SeqCst) > 0 {
            self.threads.iter().for_each(Thread::unpark);
        }
        // Returns once every task has been taken (by this thread or a team thread).
        let mine = catch_unwind(AssertUnwindSafe(|| take_tasks(s, &job, 0)));
        // The job lives on this stack: close the loop, then wait for the threads inside it.
        s.active.fetch_or(CLOSED, Ordering::SeqCst);
        let mut spins = 0u32;
        while s.active.load(Ordering::SeqCst) != CLOSED {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        s.job.store(std::ptr::null_mut(), Ordering::Relaxed);
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if s.panicked.load(Ordering::SeqCst) {
            panic!("a task of a parallel loop panicked on a team thread");
        }
    }
}

/// Runs the tasks of share `me`, then whatever is left of the others'.
fn take_tasks(s: &Shared, job: &Job, me: usize) {
    let shares = s.next.len();
    for share in (me..shares).chain(0..me) {
        let (start, end) = (job.tasks * share / shares, job.tasks * (share + 1) / shares);
        loop {
            let t = start + s.next[share].0.fetch_add(1, Ordering::Relaxed);
            if t >= end {
                break;
            }
            (job.body)(t);
        }
    }
}

/// A team thread: waits for each epoch, joins its loop if it is still open, helps.
fn member(s: &'static Shared, me: usize) {
    // Epoch 0 is the team's start: a loop may be published before this thread first runs.
    let mut seen = 0;
    loop {
        seen = wait_for_epoch(s, seen);
        if s.active.fetch_add(1, Ordering::SeqCst) & CLOSED == 0 {
            let job = s.job.load(Ordering::Relaxed) as *const Job;
            // SAFETY: the loop was open when this thread joined it (the SeqCst add above
            // follows the caller's store of its live `Job` and the opening), and the caller
            // keeps the job alive until `active` no longer counts this thread.
            let job = unsafe { &*job };
            if catch_unwind(AssertUnwindSafe(|| take_tasks(s, job, me))).is_err() {
                s.panicked.store(true, Ordering::SeqCst);
            }
        }
        s.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Spins until the epoch moves past `seen` (parking after `SPIN_FOR`); returns the new one.
fn wait_for_epoch(s: &Shared, seen: u64) -> u64 {
    let mut idle_since = None;
    let mut spins = 0u32;
    loop {
        let now = s.epoch.load(Ordering::SeqCst);
        if now != seen {
            return now;
        }
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(256) {
            std::hint::spin_loop();
            continue;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        let idle = since.elapsed();
        if idle < HOT_SPIN {
            continue;
        }
        // Give the core away now and then: with more threads than cores, a spinning
        // thread would hold one that a working thread needs.
        thread::yield_now();
        if idle < SPIN_FOR {
            continue;
        }
        // Announce the nap, then look once more: a loop published after this check sees
        // `sleeping` (both SeqCst) and unparks.
        s.sleeping.fetch_add(1, Ordering::SeqCst);
        if s.epoch.load(Ordering::SeqCst) == seen {
            thread::park();
        }
        s.sleeping.fetch_sub(1, Ordering::SeqCst);
        idle_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts_each_task_once(tasks: usize) {
        let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
        for_each(tasks, &|t| {
            hits[t].fetch_add(1, Ordering::Relaxed);
        });
        assert!(
            hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
            "{tasks} tasks"
        );
    }

    #[test]
    fn runs_every_task_exactly_once() {
        for tasks in [0, 1, 2, 3, 7, 64, 1001] {
            counts_each_task_once(tasks);
        }
    }

    #[test]
    fn wakes_after_parking() {
        counts_each_task_once(9);
        thread::sleep(SPIN_FOR * 3);
        counts_each_task_once(9);
    }

    #[test]
    fn nested_and_concurrent_loops_run_every_task() {
        let total = AtomicUsize::new(0);
        thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        for_each(5, &|_| {
                            for_each(4, &|_| {
                                total.fetch_add(1, Ordering::Relaxed);
                            });
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 3 * 50 * 5 * 4);
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_and_the_team_goes_on() {
        for victim in [0, 6] {
            let result = catch_unwind(|| {
                for_each(7, &|t| {
                    if t == victim {
                        panic!("task {t} fails");
                    }
                })
            });
            assert!(
                result.is_err(),
                "task {victim}'s panic must reach the caller"
            );
        }
        counts_each_task_once(33);
    }
}
