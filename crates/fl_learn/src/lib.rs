//! # fl_learn
//!
//! The learning side of a Mycelix FL participant, with no Holochain in it: bundled real
//! data sets, a CSV loader and a participant's own table read against a task's schema
//! ([`data`]); IDX files such as Fashion-MNIST's ([`idx`]); IID, label-skewed, extreme
//! and gamma-similarity partitions across peers ([`partition`]); models whose
//! parameter vectors map one to one onto fl_core tensors ([`model`]), the convolutional
//! one on candle ([`cnn`]); local minibatch SGD
//! with momentum and weight decay ([`train`]); and the Byzantine attacks, each crafted from
//! the attacker's own data and what its colluders share ([`attacks`]); ByzFL's benchmark
//! config read in its own format and expanded into its grid ([`byzfl`]).
//!
//! `fl_node` builds participants, conductors and runs on top of it.

#![deny(missing_docs)]

pub mod attacks;
pub mod byzfl;
pub mod cnn;
pub mod data;
pub mod idx;
pub mod model;
pub mod partition;
pub mod train;
