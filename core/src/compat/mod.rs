//! Older contract versions, so plugins built for them keep loading.
//!
//! abi_stable refuses a library whose prefix types (root module, trait vtables) have fewer
//! fields than the host expects, and any changed data type is a different layout. So each
//! released minor version keeps a frozen copy of its definitions here, under the same type
//! names, and the host tries the newest layout first, then each older one
//! (../shared/ABI-NOTES.md, pitfall 1). [`upgrade`] adapts an old plugin object to the
//! current [`crate::abi::RestrictionPlugin`], giving every operation added since its
//! version its documented default (docs/abi.md, section 5).
//!
//! | module | contract | released with |
//! |---|---|---|
//! | [`v1_0`] | 1.0.0 | hotplug-core 1.0.0 |
//! | the crate root | 1.1.0 (current) | hotplug-core 1.1.0 |

pub mod upgrade;
pub mod v1_0;
