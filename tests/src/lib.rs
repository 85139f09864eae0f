//! Sweettest scenarios live in `tests/tests/` (one test binary, `tests/tests/main.rs`);
//! this crate has no library code.
