//! The round schedule: when each entry of a round may be dated, and when the next round
//! opens.
//!
//! A round opens at `opened_at` (the task's timestamp for round 0). From there, with the
//! task's [`RoundSchedule`] and a committee of `K` members (`K = 0` when the task's author
//! aggregates: round 0, or nobody holds the committee threshold):
//!
//! | what | dated from | dated until |
//! |---|---|---|
//! | submissions | `opened_at` | `opened_at + submit_ms` |
//! | ballots | `opened_at` | `opened_at + submit_ms + vote_ms` |
//! | aggregate by committee rank `k` (or the task's author when `K = 0`) | `opened_at + k * slot_ms` | - |
//! | aggregate by any other agent (the fallback) | `opened_at + submit_ms + vote_ms + max(K, 1) * slot_ms` | - |
//!
//! The first-ranked member may aggregate at once: it decides when the round has what it
//! needs, and the fast path of an honest round is as fast as its entries travel. Anyone
//! else waits until every window has closed and every rank has had its slot, so that an
//! agent off the committee cannot close a round before the committee has voted.
//!
//! The round's *deadline* is one slot after the fallback's begins,
//! `opened_at + submit_ms + vote_ms + (max(K, 1) + 1) * slot_ms`. An aggregate
//! may be dated later (the whole committee may have been away), but the next round opens
//! at the earlier of the aggregate's date and the deadline ([`RoundSchedule::next_opening`]),
//! and the aggregate records its round's deadline so that the next round's validators need
//! only their base. No author's clock can move a round's opening past the schedule of the
//! round before: an aggregate dated ten years ahead opens the next round at the deadline.
//!
//! Dates are the authors' own action timestamps. A date in the past cannot be refused by
//! any deterministic rule, so an aggregator that dates its aggregate early and publishes it
//! late shortens the next round's submission window in real time; the schedule bounds how
//! late, not how early.

use hdi::prelude::*;

use crate::rejection::Code;

/// Longest window or slot a task may set (one day). With at most
/// [`crate::task::MAX_COMMITTEE_SIZE`] ranks, a round's deadline is at most about 100 days
/// after its opening, and every sum stays far from overflow.
pub const MAX_WINDOW_MS: u64 = 86_400_000;

/// How long each phase of a round lasts, fixed by the task.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundSchedule {
    /// Submissions are dated at most this long after the round opens (at least 1 ms).
    pub submit_ms: u64,
    /// Ballots are dated at most this long after the submission window closes.
    pub vote_ms: u64,
    /// Committee rank `k` may aggregate `k` slots after the round opens; any agent may
    /// after the last rank's slot.
    pub slot_ms: u64,
}

impl Default for RoundSchedule {
    /// Ten minutes to submit, ten to vote, slots of 30 s: generous for people and
    /// conductors on slow machines; a fast round still closes as soon as its first-ranked
    /// member has what it needs.
    fn default() -> Self {
        RoundSchedule {
            submit_ms: 600_000,
            vote_ms: 600_000,
            slot_ms: 30_000,
        }
    }
}

fn after(t: Timestamp, ms: u64) -> Timestamp {
    // Every term is at most a few days in microseconds (checked by `check`); saturate anyway.
    let us = i64::try_from(ms).unwrap_or(i64::MAX).saturating_mul(1000);
    Timestamp::from_micros(t.as_micros().saturating_add(us))
}

impl RoundSchedule {
    /// Every window and the slot must be at most [`MAX_WINDOW_MS`]; the submission window
    /// must not be empty.
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("submit_ms", self.submit_ms),
            ("vote_ms", self.vote_ms),
            ("slot_ms", self.slot_ms),
        ] {
            if v > MAX_WINDOW_MS {
                return Err(format!(
                    "schedule {name} {v} is above the {MAX_WINDOW_MS} allowed (one day)"
                ));
            }
        }
        if self.submit_ms == 0 {
            return Err("schedule submit_ms must be at least 1".into());
        }
        Ok(())
    }

    /// The last moment a submission of a round opened at `opened` may be dated.
    pub fn submissions_close(&self, opened: Timestamp) -> Timestamp {
        after(opened, self.submit_ms)
    }

    /// The last moment a ballot may be dated.
    pub fn ballots_close(&self, opened: Timestamp) -> Timestamp {
        after(opened, self.submit_ms.saturating_add(self.vote_ms))
    }

    /// When committee rank `rank` may aggregate (the task's author holds rank 0 when the
    /// committee is empty).
    pub fn rank_opens(&self, opened: Timestamp, rank: usize) -> Timestamp {
        after(opened, (rank as u64).saturating_mul(self.slot_ms))
    }

    /// When any agent may aggregate a round with a committee of `committee` members: after
    /// both windows and every rank's slot.
    pub fn fallback_opens(&self, opened: Timestamp, committee: usize) -> Timestamp {
        let ranks = (committee.max(1) as u64).saturating_mul(self.slot_ms);
        after(self.ballots_close(opened), ranks)
    }

    /// The round's deadline: one slot after the fallback's begins.
    pub fn deadline(&self, opened: Timestamp, committee: usize) -> Timestamp {
        after(self.fallback_opens(opened, committee), self.slot_ms)
    }

    /// When the next round opens, given this round's deadline and the date of the aggregate
    /// that closes it: the earlier of the two. (An aggregate is never dated before its
    /// round opened: its slot begins at the opening at the earliest.)
    pub fn next_opening(deadline: Timestamp, aggregate_at: Timestamp) -> Timestamp {
        aggregate_at.min(deadline)
    }
}

/// `at` must lie in `[opened, closes]`; the error names the entry, the round and the window.
pub fn check_dated(
    what: &str,
    round: u32,
    at: Timestamp,
    opened: Timestamp,
    closes: Timestamp,
) -> Result<(), String> {
    if at < opened {
        return Err(format!(
            "{what}: dated {}, before round {round} opened at {}",
            ms_label(at),
            ms_label(opened)
        ));
    }
    if at > closes {
        return Err(format!(
            "{what}: dated {}, after its window in round {round} closed at {} (the task's schedule)",
            ms_label(at),
            ms_label(closes)
        ));
    }
    Ok(())
}

/// [`check_dated`] as a coded refusal: `not_yet` when dated before the round opened (the
/// author's clock is behind, and the same entry dated later may pass), `window` when dated
/// after the window closed.
pub fn check_dated_coded(
    what: &str,
    round: u32,
    at: Timestamp,
    opened: Timestamp,
    closes: Timestamp,
) -> Result<(), String> {
    check_dated(what, round, at, opened, closes).map_err(|e| {
        let code = if at < opened {
            Code::NotYet
        } else {
            Code::Window
        };
        code.reject(e)
    })
}

/// A timestamp as milliseconds since the epoch, to the microsecond, as messages show it.
pub fn ms_label(t: Timestamp) -> String {
    let us = t.as_micros();
    format!("{}.{:03} ms", us.div_euclid(1000), us.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: RoundSchedule = RoundSchedule {
        submit_ms: 1000,
        vote_ms: 500,
        slot_ms: 100,
    };

    fn ms(v: i64) -> Timestamp {
        Timestamp::from_micros(v * 1000)
    }

    #[test]
    fn windows_slots_and_deadline_follow_the_opening() {
        let open = ms(10_000);
        assert_eq!(S.submissions_close(open), ms(11_000));
        assert_eq!(S.ballots_close(open), ms(11_500));
        assert_eq!(S.rank_opens(open, 0), open);
        assert_eq!(S.rank_opens(open, 3), ms(10_300));
        // The fallback waits for both windows and every rank.
        assert_eq!(S.fallback_opens(open, 5), ms(10_000 + 1500 + 500));
        assert_eq!(S.fallback_opens(open, 0), ms(10_000 + 1500 + 100));
        // Five ranks, the fallback, and one more slot after the windows.
        assert_eq!(S.deadline(open, 5), ms(10_000 + 1500 + 600));
        assert_eq!(S.deadline(open, 0), ms(10_000 + 1500 + 200));
    }

    #[test]
    fn a_forward_dated_aggregate_opens_the_next_round_at_the_deadline() {
        let open = ms(10_000);
        let deadline = S.deadline(open, 3);
        let ten_years = ms(10_000 + 10 * 365 * 24 * 3600 * 1000);
        assert_eq!(RoundSchedule::next_opening(deadline, ten_years), deadline);
        assert_eq!(
            RoundSchedule::next_opening(deadline, ms(10_400)),
            ms(10_400)
        );
    }

    #[test]
    fn entries_outside_their_window_are_refused_with_the_window() {
        let open = ms(10_000);
        assert_eq!(
            check_dated("x", 2, ms(11_000), open, S.submissions_close(open)),
            Ok(())
        );
        assert_eq!(
            check_dated("update submission", 2, ms(11_001), open, S.submissions_close(open))
                .unwrap_err(),
            "update submission: dated 11001.000 ms, after its window in round 2 closed at 11000.000 ms (the task's schedule)"
        );
        assert!(check_dated("x", 2, ms(9_999), open, ms(11_000))
            .unwrap_err()
            .contains("before round 2 opened at 10000.000 ms"));
        assert_eq!(ms_label(Timestamp::from_micros(1_500_001)), "1500.001 ms");
    }

    #[test]
    fn schedules_are_bounded() {
        assert_eq!(S.check(), Ok(()));
        assert_eq!(RoundSchedule::default().check(), Ok(()));
        let empty = RoundSchedule { submit_ms: 0, ..S };
        assert!(empty.check().unwrap_err().contains("submit_ms"));
        let long = RoundSchedule {
            slot_ms: MAX_WINDOW_MS + 1,
            ..S
        };
        assert!(long.check().unwrap_err().contains("slot_ms"));
        let max = RoundSchedule {
            submit_ms: MAX_WINDOW_MS,
            vote_ms: MAX_WINDOW_MS,
            slot_ms: MAX_WINDOW_MS,
        };
        assert!(max.deadline(ms(0), usize::MAX) > ms(0));
    }
}
