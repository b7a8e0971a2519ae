//! Load schedules as pure functions of time: when the i-th arrival is due (open
//! model) and how many users should be running (closed model).
//!
//! Both are deterministic, so every worker (and later every node) computes the
//! same global schedule and takes its share by a [`Segment`] stride: arrival
//! or user `i` belongs to the segment with `i % stride == offset`. Shares of
//! all segments sum exactly to the requested load (k6's execution segments).

use std::time::Duration;

use crate::scenario::Profile;

/// A disjoint share of a global sequence: indices `offset, offset + stride, ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First index of the share.
    pub offset: u64,
    /// Distance between consecutive indices of the share (the number of shares).
    pub stride: u64,
}

impl Segment {
    /// The whole sequence.
    pub const WHOLE: Segment = Segment {
        offset: 0,
        stride: 1,
    };

    /// Share `index` of `count` shares of `self` (nested split: a node's share
    /// split again per worker core). The sub-shares are disjoint and cover
    /// `self` exactly.
    pub fn split(self, index: u64, count: u64) -> Segment {
        debug_assert!(index < count);
        Segment {
            offset: self.offset + self.stride * index,
            stride: self.stride * count,
        }
    }

    /// How many of the first `n` global indices belong to this share.
    pub fn count_below(self, n: u64) -> u64 {
        if n <= self.offset {
            0
        } else {
            (n - self.offset).div_ceil(self.stride)
        }
    }
}

/// Open model: the arrival times of a rate [`Profile`] (arrivals per second).
///
/// Arrival `i` (0-based) is due at the time `t` where the integral of the rate
/// from 0 to `t` equals `i`, so a constant rate `r` gives `0, 1/r, 2/r, ...`
/// and a ramp spreads arrivals along it. Arrivals at or after `duration` are
/// not scheduled.
#[derive(Debug, Clone)]
pub struct ArrivalSchedule {
    /// (segment start s, segment length s, rate at start, rate at end, arrivals before it)
    segments: Vec<(f64, f64, f64, f64, f64)>,
    duration: f64,
    /// Arrivals due before the end, as a real number: arrival `i` exists iff `i < due`.
    due: f64,
    cursor: usize,
}

impl ArrivalSchedule {
    /// The schedule of `rate` over `duration`.
    pub fn new(rate: &Profile, duration: Duration) -> Self {
        let duration_s = duration.as_secs_f64();
        let mut segments = Vec::new();
        let mut t = 0.0;
        let mut before = 0.0;
        let mut from = rate.start;
        for stage in &rate.stages {
            let len = stage.duration.as_secs_f64();
            let (r0, r1) = if rate.step {
                (stage.target, stage.target)
            } else {
                (from, stage.target)
            };
            if len > 0.0 {
                segments.push((t, len, r0, r1, before));
                before += (r0 + r1) / 2.0 * len;
            }
            t += len;
            from = stage.target;
        }
        // After the last stage the last value holds until the end of the run.
        let tail = (duration_s - t).max(0.0);
        if tail > 0.0 || segments.is_empty() {
            segments.push((t, tail.max(f64::MIN_POSITIVE), from, from, before));
        }
        let mut schedule = Self {
            segments,
            duration: duration_s,
            due: 0.0,
            cursor: 0,
        };
        schedule.due = schedule.cumulative(duration_s);
        schedule
    }

    /// Number of arrivals due before the end of the run.
    pub fn total(&self) -> u64 {
        self.due.ceil() as u64
    }

    /// Arrivals due in `[0, t)` (the integral of the rate), as a real number.
    pub fn cumulative(&self, t: f64) -> f64 {
        let mut acc = 0.0;
        for &(start, len, r0, r1, before) in &self.segments {
            if t <= start {
                break;
            }
            let tau = (t - start).min(len);
            acc = before + r0 * tau + (r1 - r0) / (2.0 * len) * tau * tau;
        }
        acc
    }

    /// When arrival `i` is due, or `None` if it falls at or after the end.
    /// Cheapest when called with non-decreasing `i` (a cursor remembers the
    /// segment), correct for any `i`.
    pub fn time_of(&mut self, i: u64) -> Option<Duration> {
        let n = i as f64;
        if n >= self.due {
            return None;
        }
        if self.segments.get(self.cursor).is_none_or(|s| s.4 > n) {
            self.cursor = 0;
        }
        while self.cursor + 1 < self.segments.len() && self.segments[self.cursor + 1].4 <= n {
            self.cursor += 1;
        }
        let (start, len, r0, r1, before) = self.segments[self.cursor];
        let k = n - before;
        // Solve r0*tau + a*tau^2 = k with a = (r1-r0)/(2 len), for tau >= 0.
        let a = (r1 - r0) / (2.0 * len);
        let tau = if k <= 0.0 {
            0.0
        } else if a.abs() < 1e-12 {
            if r0 <= 0.0 {
                return None;
            }
            k / r0
        } else {
            let disc = r0 * r0 + 4.0 * a * k;
            if disc < 0.0 {
                return None;
            }
            // Numerically stable root of a*tau^2 + r0*tau - k = 0.
            let root = if r0 >= 0.0 {
                2.0 * k / (r0 + disc.sqrt())
            } else {
                (-r0 + disc.sqrt()) / (2.0 * a)
            };
            if root.is_nan() {
                return None;
            }
            root
        };
        let is_last = self.cursor + 1 == self.segments.len();
        if tau > len + 1e-9 && !is_last {
            // Rounding put it past this segment: it belongs to the next one.
            self.cursor += 1;
            return self.time_of(i);
        }
        let t = start + tau;
        if t >= self.duration || !t.is_finite() {
            return None;
        }
        Some(Duration::from_secs_f64(t))
    }
}

/// Closed model: the target number of users over time, ramped up no faster
/// than `spawn_rate` users per second (decreases apply at once). While
/// ramping, user `i` of a ramp starts at `i / spawn_rate` after it began, `i`
/// from 0: the first one at once (as Locust does), not after `1 / spawn_rate`.
///
/// Simulated in fixed 10 ms steps from t = 0, so it is a deterministic
/// function of time that every worker and node computes identically.
#[derive(Debug, Clone)]
pub struct UserSchedule {
    profile: Profile,
    spawn_rate: f64,
    step_s: f64,
    t: f64,
    /// Users ramped so far (fractional: the spawn rate's credit).
    users: f64,
    /// The profile's target, in whole users, at `t`.
    want: f64,
}

impl UserSchedule {
    const STEP: Duration = Duration::from_millis(10);

    /// The schedule of `users` with the given spawn rate (users per second).
    pub fn new(users: &Profile, spawn_rate: f64) -> Self {
        Self {
            profile: users.clone(),
            spawn_rate,
            step_s: Self::STEP.as_secs_f64(),
            t: 0.0,
            users: 0.0,
            want: users.at(Duration::ZERO).floor().max(0.0),
        }
    }

    /// The profile's target at `t` in whole users, before the spawn-rate
    /// limit: while [`UserSchedule::users_at`] is below it, users are
    /// still being spawned toward it.
    pub fn want_at(&self, t: Duration) -> u64 {
        self.profile.at(t).floor().max(0.0) as u64
    }

    /// Users that should be running at `t`; call with non-decreasing `t`.
    pub fn users_at(&mut self, t: Duration) -> u64 {
        let target_t = t.as_secs_f64();
        while self.t + self.step_s <= target_t + 1e-12 {
            self.t += self.step_s;
            self.want = self
                .profile
                .at(Duration::from_secs_f64(self.t))
                .floor()
                .max(0.0);
            self.users = if self.want > self.users {
                (self.users + self.spawn_rate * self.step_s).min(self.want)
            } else {
                self.want
            };
        }
        if self.users + 1e-9 >= self.want {
            return self.want as u64;
        }
        // Ramping: users 0..=floor(credit) have started (user i at i / rate).
        ((self.users + 1e-9).floor() + 1.0).min(self.want) as u64
    }
}

#[cfg(test)]
mod tests;
