//! No code: this crate exists so that `cargo build -p holochain_cli --bin hc` builds the
//! pinned `hc` from the workspace's lockfile (see `scripts/tools.sh`).
