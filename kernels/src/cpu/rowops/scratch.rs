//! Per-thread f32 scratch for kernels that need a buffer sized by the call (a weight row
//! widened to f32, RoPE's cos / sin table). Each thread's buffer grows to the largest size
//! asked for and is then reused, so steady-state calls (the decode loop) allocate nothing.
//!
//! The contents are stale: callers overwrite what they read. A nested request on a thread
//! that already holds its buffer (a rayon task run by a thread waiting inside an outer
//! kernel) gets a fresh buffer instead of a borrow panic: correct, just not allocation-free.

use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` f32 of this thread's scratch.
pub(crate) fn with_f32<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_the_buffer_and_survives_nesting() {
        let first = with_f32(100, |s| {
            s.fill(1.5);
            s.as_ptr() as usize
        });
        // A smaller request reuses the same memory (the old contents are still there).
        let (again, stale) = with_f32(10, |s| (s.as_ptr() as usize, s[3]));
        assert_eq!((again, stale), (first, 1.5));
        // Nested: the inner call gets its own buffer of the asked length.
        let inner = with_f32(8, |outer| {
            outer.fill(2.0);
            with_f32(5, |inner| {
                inner.fill(3.0);
                (inner.len(), inner.as_ptr() != outer.as_ptr())
            })
        });
        assert_eq!(inner, (5, true));
    }
}
