//! The conformance suite on this crate: built fresh, loaded by hotplug-lab's `host` (the
//! one `.cargo/config.toml` names, or `$HOTPLUG_HOST`), every check in its own process.

#[test]
fn conforms() {
    hotplug_conformance::suite!().assert_passes();
}

#[test]
fn conforms_with_memmap_on_memory() {
    hotplug_conformance::suite!().options("memmap_on_memory = true").assert_passes();
}
