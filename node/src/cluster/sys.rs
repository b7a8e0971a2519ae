//! Host facts for health messages: CPU use of the whole host (from
//! `/proc/stat` deltas) and the node process's resident memory (from
//! `/proc/self/statm`). Zero where `/proc` is absent.

/// Samples host CPU use between calls.
#[derive(Debug, Default)]
pub(crate) struct CpuSampler {
    last: Option<(u64, u64)>,
}

fn cpu_totals() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = nums.iter().sum();
    let idle = nums.get(3).copied().unwrap_or(0) + nums.get(4).copied().unwrap_or(0);
    Some((total, idle))
}

impl CpuSampler {
    /// Percent of all cores busy since the previous call (0 the first time).
    pub(crate) fn sample(&mut self) -> f32 {
        let Some(now) = cpu_totals() else { return 0.0 };
        let pct = match self.last {
            Some((t0, i0)) if now.0 > t0 => {
                let dt = (now.0 - t0) as f64;
                let di = now.1.saturating_sub(i0) as f64;
                ((1.0 - di / dt) * 100.0).clamp(0.0, 100.0) as f32
            }
            _ => 0.0,
        };
        self.last = Some(now);
        pct
    }
}

/// Resident memory of this process, bytes.
pub(crate) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| t.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Wall clock, Unix ms.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Wall clock, Unix µs.
pub(crate) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_facts_are_plausible() {
        if !std::path::Path::new("/proc/stat").exists() {
            eprintln!("skipped: no /proc on this system");
            return;
        }
        let mut s = CpuSampler::default();
        assert_eq!(s.sample(), 0.0, "first sample has no baseline");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let pct = s.sample();
        assert!((0.0..=100.0).contains(&pct));
        assert!(
            rss_bytes() > 1024 * 1024,
            "a test process uses more than 1 MiB"
        );
        assert!(now_ms() > 1_700_000_000_000);
    }
}
