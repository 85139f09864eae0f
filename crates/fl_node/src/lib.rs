//! # fl_node
//!
//! The learning side of a Mycelix FL peer: bundled real data sets and a CSV loader
//! ([`data`]), partitioning across peers ([`partition`]), models whose parameter vectors map
//! one to one onto fl_core tensors ([`model`]), local minibatch SGD ([`train`]), and the
//! Byzantine attacks ([`attacks`]); what each peer does in a round ([`cohort`]); the three
//! backends that decide rounds: real conductors in this process or elsewhere
//! ([`conductor`], driven by [`driver`]) and the simulation ([`sim`]); plots ([`plot`]); the
//! web dashboard's server ([`dashboard`]); `hc launch` without Electron ([`launch`]).
//! The `mycelix-fl` binary is the command line over all of it.

#![deny(missing_docs)]

pub mod attacks;
pub mod cohort;
pub mod conductor;
pub mod dashboard;
pub mod data;
pub mod dbtune;
pub mod driver;
pub mod launch;
pub mod model;
pub mod partition;
pub mod peer;
pub mod plot;
pub mod sim;
pub mod taskfile;
pub mod train;
