#![no_main]
//! libFuzzer target: random step sequences against the model (`cargo fuzz run -s none steps`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| hotplug_fuzz::steps_target(data));
