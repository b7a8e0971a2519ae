//! CPU time of the calling thread, for the generator's own saturation check.
//! Reads `/proc/thread-self/schedstat` (nanoseconds on CPU); `None` where that
//! file does not exist (non-Linux), in which case saturation is not reported.

/// Nanoseconds the calling thread has spent on a CPU.
pub(crate) fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn thread_cpu_time_advances_with_work() {
        let Some(before) = super::thread_cpu_ns() else {
            eprintln!("skipped: /proc/thread-self/schedstat is not available on this system");
            return;
        };
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = super::thread_cpu_ns().expect("readable once");
        assert!(after > before, "{before} -> {after}");
    }
}
