//! Repeated warnings, logged at most once per interval with the count in between: a
//! flood of refused connections must not become a flood of log lines.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub(super) struct LogThrottle {
    interval: Duration,
    last_logged: Option<Instant>,
    since_logged: u64,
}

impl LogThrottle {
    pub(super) fn new(interval: Duration) -> Self {
        LogThrottle {
            interval,
            last_logged: None,
            since_logged: 0,
        }
    }

    /// Records one occurrence at `now`. When it is to be logged, returns how many
    /// occurred since the last one logged, this one included.
    pub(super) fn record(&mut self, now: Instant) -> Option<u64> {
        self.since_logged += 1;
        match self.last_logged {
            Some(last) if now.saturating_duration_since(last) < self.interval => None,
            _ => {
                self.last_logged = Some(now);
                Some(std::mem::take(&mut self.since_logged))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_occurrence_is_logged_then_one_per_interval_with_the_count_between() {
        let interval = Duration::from_secs(10);
        let mut throttle = LogThrottle::new(interval);
        let start = Instant::now();
        assert_eq!(throttle.record(start), Some(1));
        for second in 1..10 {
            assert_eq!(throttle.record(start + Duration::from_secs(second)), None);
        }
        assert_eq!(throttle.record(start + interval), Some(10));
        assert_eq!(throttle.record(start + interval), None);
        assert_eq!(throttle.record(start + 3 * interval), Some(2));
    }
}
