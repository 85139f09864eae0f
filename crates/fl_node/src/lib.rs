//! # fl_node
//!
//! A Mycelix FL participant and everything that runs participants, on top of the learning
//! crate `fl_learn` (data, partitions, models, training, attacks): an experiment's
//! settings and round reports ([`experiment`]); the experiment's peers and, in the
//! simulation, what each does in a round ([`cohort`]); one participant following a task
//! by itself ([`peer`]) on a conductor of its own or a running one ([`conductor`],
//! [`dbtune`]); task files ([`taskfile`]); a local run of many participants in one
//! process ([`local`]) and the simulation of the same rounds without conductors
//! ([`sim`]); ByzFL's benchmark grid in the simulation ([`benchmark`]); plots
//! ([`plot`]); the web dashboard's server ([`dashboard`]). The
//! `mycelix-fl` binary is the command line over all of it; `hc-launch` (the `hc_launch`
//! crate) serves the same dashboard once per agent of a launched network.

#![deny(missing_docs)]

pub mod benchmark;
pub mod cohort;
pub mod conductor;
pub mod dashboard;
pub mod dbtune;
pub mod experiment;
pub mod local;
pub mod peer;
pub mod plot;
pub mod sim;
pub mod taskfile;
