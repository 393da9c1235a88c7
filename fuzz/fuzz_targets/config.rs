#![no_main]
//! libFuzzer target: any bytes as a scenario file (`cargo fuzz run -s none config`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| hotplug_fuzz::config_target(data));
