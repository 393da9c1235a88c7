//! hotplug-core: the contract between the hotplug-lab host and its strategy plugins.
//!
//! A strategy decides, for each hot-add or device mapping, where the memmap goes and how
//! the new pages are set up: the kernel's old `mhp_restrictions` turned into an API with
//! `set_up()` and `construct()`. Plugin authors implement [`Strategy`] and call
//! [`export_plugin!`]; the host loads the library through the stable-ABI types in
//! [`abi`]. Contract version: [`ContractVersion::CURRENT`] (docs/abi.md lists every type).

pub mod abi;
pub mod export;
#[cfg(feature = "options")]
pub mod options;
pub mod strategy;
pub mod types;

pub use abi_stable;
pub use abi_stable::std_types::{ROption, RString};
pub use strategy::{Host, Ops, Strategy};
pub use types::*;

#[cfg(test)]
mod tests {
    use super::*;

    /// The export macro hard-codes abi_stable's root-module symbol name; if abi_stable
    /// ever changes it, plugins would silently stop loading.
    #[test]
    fn export_name_matches_abi_stable() {
        assert_eq!(abi_stable::library::ROOT_MODULE_LOADER_NAME, "_1as_0lib_1header_0root_bmodule_bloader");
    }

    /// The panic guard needs unwinding: a profile with `panic = "abort"` would turn every
    /// plugin panic into a dead host.
    #[test]
    fn unwinding_is_on() {
        let caught = std::panic::catch_unwind(|| panic!("probe"));
        assert!(caught.is_err());
    }

    #[test]
    fn contract_versions_accept_same_major_only() {
        let host = ContractVersion::CURRENT;
        assert!(host.accepts(&ContractVersion::new(1, 3, 0)));
        assert!(!host.accepts(&ContractVersion::new(2, 0, 0)));
        assert!(!host.accepts(&ContractVersion { magic: 0, ..ContractVersion::CURRENT }));
    }

    #[test]
    fn errno_names_round_trip() {
        for e in [errno::E2BIG, errno::EEXIST, errno::EINVAL, errno::ENOMEM, errno::EBUSY, errno::ENXIO] {
            assert_eq!(errno::from_name(errno::name(e).unwrap()), Some(e));
        }
        assert_eq!(errno::from_name("ENOPE"), None);
    }

    #[test]
    fn request_kind_bits() {
        let both = RequestKinds::SYSTEM_RAM.union(RequestKinds::DEVICE);
        assert!(both.contains(RequestKind::SYSTEM_RAM));
        assert!(RequestKinds::SYSTEM_RAM.contains(RequestKind::SYSTEM_RAM));
        assert!(!RequestKinds::SYSTEM_RAM.contains(RequestKind::DEVICE));
        assert!(!both.contains(RequestKind(64)));
    }
}
