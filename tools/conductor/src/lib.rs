//! Nothing: this crate only pins the conductor and bootstrap binaries' dependencies.
