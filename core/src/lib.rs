//! hotplug-core: the contract between the hotplug-lab host and its strategy plugins.
//!
//! A strategy decides, for each hot-add or device mapping, where the memmap goes and how
//! the new pages are set up: the kernel's old `mhp_restrictions` turned into an API with
//! `set_up()` and `construct()`. Plugin authors implement [`Strategy`] and call
//! [`export_plugin!`]; the host loads the library through the stable-ABI types in
//! [`abi`]. Contract version: [`ContractVersion::CURRENT`] (docs/abi.md lists every type);
//! [`compat`] keeps the layouts of older versions so their plugins keep loading.

pub mod abi;
pub mod compat;
pub mod export;
#[cfg(feature = "options")]
pub mod options;
pub mod size;
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

    /// The rule docs/abi.md section 5 states: same major, minor not newer than the host's.
    #[test]
    fn contract_versions_accept_same_major_and_older_minors() {
        let host = ContractVersion::CURRENT;
        assert_eq!((host.major, host.minor), (1, 1));
        assert!(host.accepts(&ContractVersion::new(1, 0, 0)), "1.0: loaded through compat::v1_0");
        assert!(host.accepts(&ContractVersion::new(1, 1, 9)), "1.1.x: any patch");
        assert!(!host.accepts(&ContractVersion::new(1, 2, 0)), "1.2: a newer minor this host cannot know");
        assert!(!host.accepts(&ContractVersion::new(2, 0, 0)), "another major");
        assert!(!host.accepts(&ContractVersion::new(0, 1, 0)), "another major");
        assert!(!host.accepts(&ContractVersion { magic: 0, ..ContractVersion::CURRENT }), "wrong magic");
    }

    /// The package version is the contract version: abi_stable checks package versions,
    /// and authors read the contract from Cargo.toml.
    #[test]
    fn package_version_is_the_contract_version() {
        let v = ContractVersion::CURRENT;
        assert_eq!(env!("CARGO_PKG_VERSION"), format!("{}.{}.{}", v.major, v.minor, v.patch));
        assert_eq!(compat::v1_0::types::ContractVersion::CURRENT.minor, 0, "the frozen copy keeps 1.0.0");
    }

    #[test]
    fn strided_ranges() {
        // Four 8-page runs, one per 32768-page block from pfn 0x100000.
        let r = StridedRange::new(0x10_0000, 8, 32768, 4);
        assert_eq!(r.run(0), Some(PfnRange::new(0x10_0000, 8)));
        assert_eq!(r.run(3), Some(PfnRange::new(0x10_0000 + 3 * 32768, 8)));
        assert_eq!(r.run(4), None);
        assert_eq!(r.span(), Some(PfnRange::new(0x10_0000, 3 * 32768 + 8)));
        assert_eq!(StridedRange::new(0, 0, 1, 4).span(), None, "empty runs");
        assert_eq!(StridedRange::new(0, 1, 1, 0).span(), None, "no runs");
        assert_eq!(StridedRange::new(u64::MAX - 4, 2, 2, 3).span(), None, "the last run ends past 2^64");
        assert_eq!(StridedRange::new(1, 2, u64::MAX, 2).run(1), None, "1 + 2^64 - 1 overflows");
    }

    #[test]
    fn option_choices() {
        let o = OptionSpec::choice("mode", "strict|force", "\"strict\"", "help");
        assert_eq!(o.choice_list().collect::<Vec<_>>(), ["strict", "force"]);
        assert_eq!(OptionSpec::new("n", OptionType::INTEGER, "", "h").choice_list().count(), 0);
        assert_eq!(OptionType(99).name(), "unknown");
    }

    #[test]
    fn errno_names_round_trip() {
        for e in [errno::E2BIG, errno::EEXIST, errno::EINVAL, errno::ENOMEM, errno::EBUSY, errno::ENXIO] {
            assert_eq!(errno::from_name(errno::name(e).unwrap()), Some(e));
        }
        assert_eq!(errno::from_name("ENOPE"), None);
    }

    #[test]
    fn name_lists_read_both_ways() {
        assert_eq!(or_list(Driver::ALL.map(Driver::name)), "none, acpi-dimm, virtio-mem or dax-kmem");
        assert_eq!(or_list(["a"]), "a");
        assert_eq!(or_list(Vec::<&str>::new()), "");
        for d in Driver::ALL {
            assert_eq!(Driver::from_name(d.name()), Some(d));
        }
        for t in PgmapType::ALL {
            assert_eq!(PgmapType::from_name(t.name()), Some(t));
        }
        assert_eq!(PgmapType::from_name("none"), None, "not a type a device request carries");
        for a in Arch::ALL {
            assert_eq!(Arch::from_name(a.name()), Some(a));
        }
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
