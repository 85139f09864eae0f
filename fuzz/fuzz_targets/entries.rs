//! Arbitrary bytes decoded as every entry type of the integrity zome, as validation decodes
//! them (`wire::decode_entry`), and the zome's pure rules run on whatever decodes, with a
//! fixed valid round as context (see `mycelix_fl_fuzz::check_entry_bytes`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mycelix_fl_fuzz::check_entry_bytes(data);
});
