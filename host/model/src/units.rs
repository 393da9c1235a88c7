//! Sizes in the kernel's binary units, for messages: the one style of hotplug-core,
//! which plugins use for their notes too.

pub use hotplug_core::size::{count_of, format_pages, format_size, thousands};
