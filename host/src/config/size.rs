//! Sizes and addresses as users type them: integers, hex (`0x1_0000_0000`) or binary
//! units (`128MiB`, `4 GiB`, `1PiB`).

pub use crate::model::units::format_size;
pub use hotplug_core::options::Size;
pub use hotplug_core::size::parse_size;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_exact_units() {
        assert_eq!(format_size(128 << 20), "128 MiB");
        assert_eq!(format_size(3 << 29), "1,536 MiB");
        assert_eq!(format_size(4097), "4,097 B");
        assert_eq!(format_size(0), "0 B");
    }

    #[test]
    fn a_config_size_is_the_contracts_size() {
        let s: Size = toml::from_str::<toml::Table>("x = \"4 GiB\"").unwrap()["x"].clone().try_into().unwrap();
        assert_eq!(s, Size(4 << 30));
    }
}
