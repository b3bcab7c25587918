//! The S3 protocol of coffer, on the `s3s` crate: s3s parses, routes and verifies SigV4; this
//! crate maps each operation onto [`coffer_objects::Store`], and every domain error onto its S3
//! code in one place (`error.rs`). Replacing s3s later touches this crate only.

mod access;
mod buckets;
mod convert;
mod error;
mod front;
mod host;
mod listing;
mod multipart;
mod objects;
mod service;

pub use access::Caller;
pub use front::S3Front;
pub use host::Domains;
pub use service::{S3Config, build};
