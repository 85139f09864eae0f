//! Which committee members' votes count in a round.
//!
//! Colluding members accept each other's updates and reject everyone else's. Looked at one
//! submission at a time, that is indistinguishable from honest members who disagree with
//! each other on skewed data: with 45 % attackers, honest work needs nearly every honest
//! vote to survive a plain majority. Looked at over the whole round, the two groups
//! separate: honest members agree with each other on most submissions (they measure the
//! same updates on similar data), colluders agree with each other and disagree with the
//! honest members on nearly all of them.
//!
//! So trust is decided per member, from the round's whole vote matrix:
//!
//! 1. A member *abstains* when it voted on fewer than half of the submissions it did not
//!    author: its votes do not count and it is not judged.
//! 2. Two members *agree* when, over the submissions neither authored, they cast the same
//!    vote on more than [`AGREEMENT`] (three quarters) of them; a vote only one of them
//!    cast counts as a disagreement, so a ballot with a single vote agrees with nobody.
//! 3. A *bloc* is a connected component of that relation: members linked by a chain of
//!    agreeing pairs.
//! 4. A member is *trusted* when its bloc carries more than half of the reputation of the
//!    whole committee, voters or not; the other voters are *distrusted*.
//!
//! Why three quarters and chains: on label-skewed data an honest member rejects up to a
//! fifth of the honest updates (measured on digits, Dirichlet 0.5), so two honest members
//! may disagree on more than a quarter, but each agrees with most of the others and the
//! chain links them all. Under a stealthy attack honest members accept the colluders'
//! updates too, so every honest member and colluder vote alike on the colluders' own
//! submissions (close to half of them at 45 % attackers): a bar at one half would link
//! the colluders to any honest member who rejects a single honest update.
//!
//! Why the whole committee's reputation: an aggregator chooses which ballots it cites.
//! Measured against the cited voters only, an aggregator could cite its colluders alone
//! and make them the trusted majority; measured against the committee, leaving ballots out
//! can only make the committee silent.
//!
//! Limits: nothing tells a captured committee (colluders holding most of the committee's
//! reputation) from an honest one, which is why the committee should be the whole cohort;
//! and colluders who grade their votes from the honest pattern to their own in steps of
//! less than a quarter can chain the two blocs into one, which leaves every voter trusted
//! and the committee a plain reputation-weighted majority. The computation uses integer
//! counts and integer reputation weights only, so every validator gets the same answer.

/// Two members agree when the share of the submissions neither authored on which they
/// voted alike exceeds `AGREEMENT.0 / AGREEMENT.1`.
pub const AGREEMENT: (u64, u64) = (3, 4);

/// How a committee member's votes stand in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Its bloc holds more than half of the committee's reputation: its votes count.
    Trusted,
    /// It voted enough to be judged, and its bloc is not trusted.
    Distrusted,
    /// It voted on fewer than half of the submissions it could vote on.
    Abstained,
}

/// The standing of every committee member who voted in a round.
///
/// `committee` is the round's committee (votes by anyone else are ignored); `votes[s]`
/// lists the `(member, accept)` votes on submission `s`, whose author is `authors[s]`; a
/// member's vote on its own submission and any second vote by a member on the same
/// submission are ignored. `weight` gives each member's reputation weight. Returns every
/// voter once, sorted by key.
pub fn voter_standing<K: Ord + Clone>(
    committee: &[K],
    authors: &[&K],
    votes: &[&[(K, bool)]],
    weight: impl Fn(&K) -> u64,
) -> Vec<(K, Standing)> {
    let mut members: Vec<&K> = committee.iter().collect();
    members.sort();
    members.dedup();
    let total: u128 = members.iter().map(|k| u128::from(weight(k))).sum();
    let own = |s: usize, k: &K| authors.get(s).is_some_and(|a| *a == k);
    let mut voters: Vec<K> = votes
        .iter()
        .enumerate()
        .flat_map(|(s, vs)| vs.iter().filter(move |(k, _)| !own(s, k)))
        .filter(|(k, _)| members.binary_search(&k).is_ok())
        .map(|(k, _)| k.clone())
        .collect();
    voters.sort();
    voters.dedup();
    // matrix[v][s]: voter v's first vote on submission s.
    let mut matrix: Vec<Vec<Option<bool>>> = vec![vec![None; votes.len()]; voters.len()];
    for (s, vs) in votes.iter().enumerate() {
        for (k, accept) in vs.iter() {
            if own(s, k) {
                continue;
            }
            if let Ok(v) = voters.binary_search(k) {
                matrix[v][s].get_or_insert(*accept);
            }
        }
    }
    // Submissions voter v could vote on (not its own), and how many it voted on.
    let authored = |v: usize, s: usize| own(s, &voters[v]);
    let judged: Vec<bool> = (0..voters.len())
        .map(|v| {
            let open = (0..votes.len()).filter(|&s| !authored(v, s)).count() as u64;
            let cast = matrix[v].iter().filter(|x| x.is_some()).count() as u64;
            2 * cast >= open
        })
        .collect();
    let weights: Vec<u128> = voters.iter().map(|k| u128::from(weight(k))).collect();
    let agree = |a: usize, b: usize| {
        let (mut shared, mut same) = (0u64, 0u64);
        for (s, pair) in matrix[a].iter().zip(&matrix[b]).enumerate() {
            if authored(a, s) || authored(b, s) {
                continue;
            }
            shared += 1;
            if let (Some(x), Some(y)) = pair {
                same += u64::from(x == y);
            }
        }
        shared > 0 && AGREEMENT.1 * same > AGREEMENT.0 * shared
    };
    // Blocs: the connected components of the agreement relation among judged voters
    // (union-find, the smallest index as root, so the result does not depend on order).
    let mut root: Vec<usize> = (0..voters.len()).collect();
    fn find(root: &mut [usize], mut a: usize) -> usize {
        while root[a] != a {
            root[a] = root[root[a]];
            a = root[a];
        }
        a
    }
    for a in (0..voters.len()).filter(|&a| judged[a]) {
        for b in (a + 1..voters.len()).filter(|&b| judged[b]) {
            if agree(a, b) {
                let (ra, rb) = (find(&mut root, a), find(&mut root, b));
                root[ra.max(rb)] = ra.min(rb);
            }
        }
    }
    let mut bloc_weight = vec![0u128; voters.len()];
    for (a, w) in weights.iter().enumerate() {
        let r = find(&mut root, a);
        bloc_weight[r] += w;
    }
    (0..voters.len())
        .map(|a| {
            let r = find(&mut root, a);
            let standing = if !judged[a] {
                Standing::Abstained
            } else if 2 * bloc_weight[r] > total {
                Standing::Trusted
            } else {
                Standing::Distrusted
            };
            (voters[a].clone(), standing)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Submissions 0..h by honest agents 0..h, h..h+b by colluders h..h+b. Every member
    /// votes on every submission: honest members accept honest work except where
    /// `noise(member, submission)` says they misjudge it, colluders accept each other.
    fn round(h: u8, b: u8, noise: impl Fn(u8, u8) -> bool) -> (Vec<u8>, Vec<Vec<(u8, bool)>>) {
        let n = h + b;
        let authors: Vec<u8> = (0..n).collect();
        let votes = (0..n)
            .map(|s| {
                (0..n)
                    .map(|m| {
                        let honest_sub = s < h;
                        let accept = if m < h {
                            honest_sub != noise(m, s)
                        } else {
                            !honest_sub
                        };
                        (m, accept)
                    })
                    .collect()
            })
            .collect();
        (authors, votes)
    }

    /// Standing of every voter, with the committee made of every member who cast a vote.
    fn standing(
        authors: &[u8],
        votes: &[Vec<(u8, bool)>],
        w: impl Fn(&u8) -> u64,
    ) -> Vec<Standing> {
        let mut committee: Vec<u8> = votes.iter().flatten().map(|(k, _)| *k).collect();
        committee.sort();
        committee.dedup();
        standing_in(&committee, authors, votes, w)
    }

    fn standing_in(
        committee: &[u8],
        authors: &[u8],
        votes: &[Vec<(u8, bool)>],
        w: impl Fn(&u8) -> u64,
    ) -> Vec<Standing> {
        let a: Vec<&u8> = authors.iter().collect();
        let v: Vec<&[(u8, bool)]> = votes.iter().map(Vec::as_slice).collect();
        voter_standing(committee, &a, &v, w)
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    fn trust(authors: &[u8], votes: &[Vec<(u8, bool)>], w: impl Fn(&u8) -> u64) -> Vec<bool> {
        standing(authors, votes, w)
            .into_iter()
            .map(|t| t == Standing::Trusted)
            .collect()
    }

    #[test]
    fn eleven_honest_members_who_misjudge_a_tenth_each_outweigh_nine_colluders() {
        // Each honest member misjudges a different tenth of the submissions: two honest
        // members disagree on up to a fifth.
        let (authors, votes) = round(11, 9, |m, s| (3 * m + s) % 10 == 0);
        let t = trust(&authors, &votes, |_| 1);
        assert!(t[..11].iter().all(|&x| x), "{t:?}");
        assert!(t[11..].iter().all(|&x| !x), "{t:?}");
    }

    #[test]
    fn colluders_who_only_reject_honest_work_are_not_trusted() {
        // A stealthy attack: honest members accept every update, the colluders' too, and
        // three of them also reject one honest update each. Colluders agree with them on
        // the colluders' own updates and on those rejections: not on enough.
        let (authors, mut votes) = round(11, 9, |_, _| false);
        for (s, member) in [(0u8, 1u8), (1, 2), (2, 3)] {
            votes[s as usize][member as usize].1 = false;
        }
        for ballot in &mut votes[11..] {
            for vote in &mut ballot[..11] {
                vote.1 = true;
            }
        }
        let t = trust(&authors, &votes, |_| 1);
        assert!(t[..11].iter().all(|&x| x), "{t:?}");
        assert!(t[11..].iter().all(|&x| !x), "{t:?}");
    }

    #[test]
    fn agreement_links_a_bloc_through_its_members() {
        // 0 and 2 vote alike on only three quarters of what they share (not enough to
        // agree), but both agree with 1: one bloc of three, more than half of five.
        let authors = [9u8; 8];
        let col = |a: bool, b: bool, c: bool| vec![(0u8, a), (1, b), (2, c), (3, !a), (4, !a)];
        let votes = vec![
            col(true, true, true),
            col(true, true, true),
            col(true, true, true),
            col(true, true, true),
            col(true, true, true),
            col(true, true, true),
            col(true, false, false),
            col(false, false, true),
        ];
        let t = trust(&authors, &votes, |_| 1);
        assert_eq!(t, [true, true, true, false, false]);
    }

    #[test]
    fn reputation_decides_between_blocs_of_equal_size() {
        let (authors, votes) = round(5, 5, |_, _| false);
        // Equal weight: no bloc holds more than half.
        assert!(trust(&authors, &votes, |_| 1).iter().all(|&x| !x));
        // The colluders' reputation has fallen: the honest bloc is trusted.
        let t = trust(&authors, &votes, |&k| if k < 5 { 10 } else { 3 });
        assert_eq!(t, [[true; 5], [false; 5]].concat());
    }

    #[test]
    fn own_votes_and_second_votes_are_ignored() {
        // Two members: each accepts its own submission and rejects the other's, so they
        // disagree on everything that counts; the second votes would make them agree.
        let authors = [0u8, 1];
        let votes = vec![
            vec![(0, true), (1, false), (1, true)],
            vec![(1, true), (0, false), (0, true)],
        ];
        // Only one counted vote each, on different submissions: no common submission.
        assert_eq!(trust(&authors, &votes, |_| 1), vec![false, false]);
        // A lone voter is trusted when it holds most of the committee's reputation, not
        // when others on the committee did not vote (or were not cited).
        let lone = &votes[..1];
        let t = |committee: &[u8]| standing_in(committee, &authors, lone, |_| 1);
        assert_eq!(t(&[1]), vec![Standing::Trusted]);
        assert_eq!(t(&[0, 1]), vec![Standing::Distrusted]);
    }

    #[test]
    fn citing_only_the_colluders_leaves_the_committee_without_trust() {
        let (authors, votes) = round(11, 9, |_, _| false);
        // Only the colluders' ballots, against the committee of all twenty.
        let cited: Vec<Vec<(u8, bool)>> = votes
            .iter()
            .map(|vs| vs.iter().filter(|(m, _)| *m >= 11).cloned().collect())
            .collect();
        let committee: Vec<u8> = (0..20).collect();
        let s = standing_in(&committee, &authors, &cited, |_| 1);
        assert!(s.iter().all(|&x| x == Standing::Distrusted), "{s:?}");
    }

    #[test]
    fn a_ballot_with_one_vote_abstains_and_links_nobody() {
        // Colluder 19 casts a single vote that every other member agrees with: it must
        // not join the honest and colluding blocs into one.
        let (authors, mut votes) = round(11, 9, |_, _| false);
        for (s, ballot) in votes.iter_mut().enumerate() {
            if s != 0 {
                ballot.retain(|(m, _)| *m != 19);
            } else {
                ballot.iter_mut().for_each(|v| v.1 = true);
            }
        }
        let s = standing(&authors, &votes, |_| 1);
        assert!(s[..11].iter().all(|&x| x == Standing::Trusted), "{s:?}");
        assert!(
            s[11..19].iter().all(|&x| x == Standing::Distrusted),
            "{s:?}"
        );
        assert_eq!(s[19], Standing::Abstained);
    }
}
