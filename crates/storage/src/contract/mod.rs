//! Contract suites every backend must pass. A backend's tests call [`meta_suite`] and
//! [`blob_suite`] with fresh, empty stores.

mod blob;
mod meta;

pub use blob::blob_suite;
pub use meta::meta_suite;
