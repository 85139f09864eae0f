//! # fl_node
//!
//! The learning side of a Mycelix FL peer: bundled real data sets and a CSV loader
//! ([`data`]), partitioning across peers ([`partition`]), models whose parameter vectors map
//! one to one onto fl_core tensors ([`model`]), local minibatch SGD ([`train`]), and the
//! Byzantine attacks ([`attacks`]).
//!
//! Work in progress (issue 4): the simulation and conductor backends and the
//! `mycelix-fl` command line build on these modules.

#![deny(missing_docs)]

pub mod attacks;
pub mod cohort;
pub mod conductor;
pub mod data;
pub mod driver;
pub mod model;
pub mod partition;
pub mod plot;
pub mod sim;
pub mod train;
