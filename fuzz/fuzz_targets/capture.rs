#![no_main]
//! libFuzzer target: any bytes as a captured machine (`cargo fuzz run -s none capture`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| hotplug_fuzz::capture_target(data));
