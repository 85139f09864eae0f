//! # fl_core
//!
//! The deterministic mathematics of Mycelix FL, shared unchanged by the Holochain zomes
//! (compiled to `wasm32-unknown-unknown`) and by native clients, benchmarks and tests.
//!
//! - [`tensor`]: model updates as finite `f32` vectors and their canonical byte encodings
//!   (little-endian `f32`, or `int8` with one scale per block).
//! - [`aggregate`]: robust aggregation rules (FedAvg mean, Krum, Multi-Krum, coordinate
//!   median, trimmed mean, geometric median, Bulyan) and the NNM pre-aggregator. Every rule
//!   returns the aggregate together with a per-input score and outlier verdict.
//! - [`pogq`]: Proof of Gradient Quality scoring.
//! - [`reputation`]: the fixed-point reputation update rule.
//! - [`committee`]: the reputation-weighted committee draw, seeded by a hash.
//! - [`trust`]: which committee members' votes count, from the round's whole vote matrix.
//! - [`round`]: a round's verdicts, next model and reputation table.
//! - [`spec`]: what a task trains: model, data schema and preprocessing, local training.
//!
//! The crate does no I/O and has no Holochain dependency. Results are bit-identical on
//! every platform: summation orders are fixed, only IEEE-754 correctly rounded operations
//! (`+ - * / sqrt`) are used on floats, reputation is integer fixed-point, and non-finite
//! values are rejected at every entry point.

#![deny(missing_docs)]

pub mod aggregate;
pub mod committee;
pub mod pogq;
pub mod reputation;
pub mod round;
pub mod spec;
pub mod tensor;
pub mod trust;

pub use aggregate::{AggregateError, Aggregation, AggregatorConfig, Rule};
pub use committee::{draw_committee, CommitteeError};
pub use pogq::{
    ballot_verdicts, BallotVerdicts, PogqError, PogqMeasurement, PogqParams, PogqVerdict,
};
pub use reputation::{
    age_for_absence, Evidence, Reputation, ReputationParams, ReputationParamsError,
};
pub use round::{
    carry_over, decide_round, Exclusion, RoundError, RoundParams, RoundResult, SubmissionInput,
    SubmissionOutcome, Verdict,
};
pub use spec::{
    DataSchema, ModelSpec, Preprocess, SpecError, TaskSpec, TrainingSettings, CNN_MNIST_SIDE,
};
pub use tensor::{CodecError, Encoding, Tensor};
