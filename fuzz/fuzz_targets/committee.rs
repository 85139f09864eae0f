//! The committee draw (`fl_core::draw_committee`) and the reputation rule on arbitrary
//! candidates: a drawn committee has the requested size, distinct eligible members, and
//! does not depend on the order of the candidates; reputation stays within [0, 1].
#![no_main]

use arbitrary::Arbitrary;
use fl_core::{draw_committee, Evidence, Reputation};
use libfuzzer_sys::fuzz_target;
use mycelix_fl_fuzz::reputation_params;

#[derive(Arbitrary, Debug)]
struct Input {
    seed: [u8; 32],
    candidates: Vec<(u16, u32)>,
    size: u8,
    threshold: u32,
    params: [u32; 6],
    start: u32,
    evidence: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let candidates: Vec<([u8; 2], Reputation)> = input
        .candidates
        .iter()
        .take(256)
        .map(|&(k, r)| (k.to_be_bytes(), Reputation(r)))
        .collect();
    let size = usize::from(input.size);
    let threshold = Reputation(input.threshold);
    if let Ok(c) = draw_committee(input.seed, &candidates, size, threshold) {
        assert_eq!(c.len(), size);
        let mut unique = c.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), size);
        for k in &c {
            assert!(candidates
                .iter()
                .any(|(x, r)| x == k && *r >= threshold && r.0 > 0));
        }
        let mut reversed = candidates.clone();
        reversed.reverse();
        assert_eq!(
            draw_committee(input.seed, &reversed, size, threshold),
            Ok(c)
        );
    }

    let params = reputation_params(input.params);
    if params.check().is_err() {
        return;
    }
    let mut rep = Reputation(input.start);
    for e in input.evidence.iter().take(64) {
        let evidence = match e % 5 {
            0 => Evidence::Accepted,
            1 => Evidence::RejectedDisputed,
            2 => Evidence::RejectedClear,
            3 => Evidence::IncludedSilent,
            _ => Evidence::Absent,
        };
        let next = params.update(rep, evidence);
        assert!(next <= Reputation::ONE);
        rep = next;
    }
});
