//! Typed rejections: every refusal of the integrity zome (and the coordinator's own
//! refusals) carries a [`Code`] naming the rule broken, so that clients act on the code
//! and never on the wording.
//!
//! Holochain carries a validation failure as a string only
//! (`ValidateCallbackResult::Invalid`), so the code travels at the start of the message, in
//! brackets: `[window] update submission: dated ...`. Conductors and clients wrap the
//! message in their own words; [`Code::of`] finds the code anywhere in what reaches the
//! client.

use std::fmt;

/// Why an entry was refused: the rule it broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The entry's bytes or fields are not what its type allows (msgpack, encoding,
    /// value ranges, an update's size, values or norm).
    Malformed,
    /// An update or delete of a protocol entry or link.
    AppendOnly,
    /// A task's parameters break a rule of their own.
    Task,
    /// The entry names a round that is not open on the base it cites, or a reference of
    /// the wrong type.
    Base,
    /// The round's reputation table is full: no room for a newcomer.
    Full,
    /// A closed task's admission: no membership, no invite, or one that does not fit.
    Admission,
    /// A signature (update, device, invite) does not verify, or the signer is not the
    /// author's.
    Signature,
    /// The PoGQ proof a submission carries is not scorable, or not signed by the
    /// submission's signer.
    Proof,
    /// Dated after its window closed under the task's schedule.
    Window,
    /// The author already wrote one like it (one per agent and round, invite quotas), or
    /// the round is already aggregated.
    Duplicate,
    /// A ballot by an agent that does not sit on the round's committee, or whose verdicts
    /// do not follow from its measurements.
    Ballot,
    /// An aggregate published by an agent outside its slot.
    Aggregator,
    /// Fewer submissions or endorsing ballots than the round needs.
    Quorum,
    /// An aggregate that differs from what its cited evidence recomputes to, or that lists
    /// or leaves out what it may not.
    Recomputation,
    /// A model evaluation whose measurement or round does not fit.
    Evaluation,
    /// A link whose base, target or tag does not fit its type.
    Link,
    /// Not possible yet, possible later: the round has not opened (for this conductor, or
    /// by the author's clock), an aggregation slot has not come, or what the rule needs
    /// has not reached this conductor. The same call may be retried.
    NotYet,
}

impl Code {
    /// Every code.
    pub const ALL: [Code; 17] = [
        Code::Malformed,
        Code::AppendOnly,
        Code::Task,
        Code::Base,
        Code::Full,
        Code::Admission,
        Code::Signature,
        Code::Proof,
        Code::Window,
        Code::Duplicate,
        Code::Ballot,
        Code::Aggregator,
        Code::Quorum,
        Code::Recomputation,
        Code::Evaluation,
        Code::Link,
        Code::NotYet,
    ];

    /// The code's name, as messages carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Malformed => "malformed",
            Code::AppendOnly => "append_only",
            Code::Task => "task",
            Code::Base => "base",
            Code::Full => "full",
            Code::Admission => "admission",
            Code::Signature => "signature",
            Code::Proof => "proof",
            Code::Window => "window",
            Code::Duplicate => "duplicate",
            Code::Ballot => "ballot",
            Code::Aggregator => "aggregator",
            Code::Quorum => "quorum",
            Code::Recomputation => "recomputation",
            Code::Evaluation => "evaluation",
            Code::Link => "link",
            Code::NotYet => "not_yet",
        }
    }

    /// Whether the same call may succeed later, unchanged.
    pub fn retriable(self) -> bool {
        self == Code::NotYet
    }

    /// `reason` as a refusal with this code: `[code] reason`.
    pub fn reject(self, reason: impl fmt::Display) -> String {
        format!("[{}] {reason}", self.as_str())
    }

    /// The code of the first `[code]` in `message`, if any.
    pub fn of(message: &str) -> Option<Code> {
        let mut rest = message;
        while let Some(start) = rest.find('[') {
            rest = &rest[start + 1..];
            if let Some(end) = rest.find(']') {
                let name = &rest[..end];
                if let Some(code) = Code::ALL.into_iter().find(|c| c.as_str() == name) {
                    return Some(code);
                }
            }
        }
        None
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_found_again_inside_what_wraps_it() {
        for code in Code::ALL {
            let message = code.reject("update submission: something");
            let wrapped = format!("Source chain error: InvalidCommit(\"{message}\")");
            assert_eq!(Code::of(&wrapped), Some(code), "{wrapped}");
        }
    }

    #[test]
    fn brackets_that_name_no_code_are_skipped() {
        assert_eq!(Code::of("values [0, 1] out of range"), None);
        assert_eq!(
            Code::of("values [0, 1]: [window] dated too late"),
            Some(Code::Window)
        );
        assert_eq!(Code::of("no code at all"), None);
    }

    #[test]
    fn names_are_distinct_and_only_not_yet_is_retriable() {
        let names: std::collections::HashSet<_> = Code::ALL.map(Code::as_str).into();
        assert_eq!(names.len(), Code::ALL.len());
        let retriable: Vec<_> = Code::ALL.into_iter().filter(|c| c.retriable()).collect();
        assert_eq!(retriable, vec![Code::NotYet]);
    }
}
