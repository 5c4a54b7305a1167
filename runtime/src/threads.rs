//! The CPU kernels' thread count: rayon's global pool, sized once per process from an
//! explicit count (`iris --threads N`), else `IRIS_THREADS`, else one thread per CPU. The
//! pool's threads live for the process, so no decode step spawns a thread.
//!
//! The thread that sizes the pool becomes one of its threads (rayon's `use_current_thread`):
//! its parallel loops go to its own work queue, which needs no allocation and no hand-off to a
//! sleeping worker, where a thread outside the pool would queue each loop through rayon's
//! global injector (an allocation every few dozen loops, and a wake-up per loop). Call it
//! from the thread that will run the models.

use std::sync::OnceLock;

/// The environment variable read when no count is given.
pub const THREADS_ENV: &str = "IRIS_THREADS";

/// A thread count that could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ThreadsError {
    #[error("{source_name}: `{value}` is not a thread count (a whole number >= 1)")]
    Invalid { source_name: String, value: String },
    #[error("the CPU thread pool was already started with {running} threads; asked for {asked}")]
    AlreadyStarted { running: usize, asked: usize },
}

static CONFIGURED: OnceLock<usize> = OnceLock::new();

/// Parses a thread count as given on the command line or in [`THREADS_ENV`].
pub fn parse_threads(source_name: &str, value: &str) -> Result<usize, ThreadsError> {
    match value.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ThreadsError::Invalid {
            source_name: source_name.to_string(),
            value: value.to_string(),
        }),
    }
}

/// Sizes the pool: `requested`, else `IRIS_THREADS`, else rayon's default (one per CPU).
/// Returns the thread count in use. Calling it again with the same count is fine; with
/// another count after the pool started, an error.
pub fn init_threads(requested: Option<usize>) -> Result<usize, ThreadsError> {
    let asked = match requested {
        Some(n) => Some(parse_threads("--threads", &n.to_string())?),
        None => match std::env::var(THREADS_ENV) {
            Ok(v) => Some(parse_threads(THREADS_ENV, &v)?),
            Err(_) => None,
        },
    };
    if let Some(&running) = CONFIGURED.get() {
        return match asked {
            Some(n) if n != running => Err(ThreadsError::AlreadyStarted { running, asked: n }),
            _ => Ok(running),
        };
    }
    let mut builder = rayon::ThreadPoolBuilder::new().use_current_thread();
    if let Some(n) = asked {
        builder = builder.num_threads(n);
    }
    if builder.build_global().is_err() {
        // Someone (a test harness, an embedding program) started the pool first.
        let running = rayon::current_num_threads();
        return match asked {
            Some(n) if n != running => Err(ThreadsError::AlreadyStarted { running, asked: n }),
            _ => Ok(running),
        };
    }
    let running = rayon::current_num_threads();
    let _ = CONFIGURED.set(running);
    Ok(running)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_parsed_strictly() {
        assert_eq!(parse_threads("x", " 3 ").unwrap(), 3);
        for bad in ["0", "-1", "two", "", "1.5"] {
            let err = parse_threads("IRIS_THREADS", bad).unwrap_err().to_string();
            assert!(err.contains("IRIS_THREADS") && err.contains(bad), "{err}");
        }
    }
}
