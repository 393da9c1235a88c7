//! Contract 1.0.0, frozen: the exact layouts released 1.0 plugins were built against.
//!
//! `types` and `abi` are copies of the 1.0.0 `types.rs` and `abi.rs` and are never edited
//! (tests/compat/hotplug-core-1.0.0 keeps the released sources verbatim, and a test
//! checks that these copies still match them). A host loads a 1.0 plugin through
//! [`abi::PluginModRef`] and wraps it with [`crate::compat::upgrade`] so that it looks
//! like a current plugin.

pub mod abi;
pub mod types;
