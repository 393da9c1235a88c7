//! `op = "set"`: runtime hotplug parameters written between hot-adds, as
//! `echo online_movable > /sys/devices/system/memory/auto_online_blocks` would.

use hotplug_host::model::ZoneType;
use hotplug_tests::{added, run_host, run_in_process, write_config, Profile::Debug as P};

const VM: &str = "[[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"2GiB\" }, { start = \"4GiB\", size = \"2GiB\" }]\n";

fn zones(r: &hotplug_host::runner::RunReport, i: usize) -> Vec<ZoneType> {
    added(r, i).onlined.iter().map(|(_, &z)| z).collect()
}

#[test]
fn auto_online_blocks_changes_between_two_adds() {
    // The kernel's default auto_online_blocks is "offline" (CONFIG_MEMORY_HOTPLUG_DEFAULT_ONLINE
    // unset): the first 1 GiB stays offline. After the write, add_memory_resource ->
    // online_memory_block onlines each of the next add's 8 blocks (1 GiB / 128 MiB) movable.
    let toml = format!(
        "[machine]\n{VM}\n\
         [[step]]\nop = \"add\"\nstart = \"8GiB\"\nsize = \"1GiB\"\n\
         [[step]]\nop = \"set\"\nauto_online_blocks = \"online_movable\"\n\
         [[step]]\nop = \"add\"\nstart = \"16GiB\"\nsize = \"1GiB\"\n"
    );
    let r = run_in_process("set-auto-online", &toml);
    assert!(zones(&r, 0).is_empty());
    assert_eq!(zones(&r, 2), vec![ZoneType::Movable; 8]);
    assert_eq!(r.model.policy.auto_online_blocks.as_str(), "online_movable");
}

#[test]
fn auto_movable_ratio_changes_where_auto_movable_onlines() {
    // online_policy = "auto-movable", auto_online_blocks = "online". Boot: 4 GiB of kernel
    // memory (2 GiB DMA/DMA32 + 2 GiB Normal). auto_movable_can_online_movable(): Movable
    // is allowed while movable pages stay within ratio % of kernel-zone pages. Ratio 301:
    // 1 GiB movable against 4 GiB kernel -> Movable. After `auto_movable_ratio = 0` no
    // movable page is allowed, so the next 1 GiB goes to the kernel zone (Normal).
    let toml = format!(
        "[machine]\nauto_online_blocks = \"online\"\nonline_policy = \"auto-movable\"\n{VM}\n\
         [[step]]\nop = \"add\"\nstart = \"8GiB\"\nsize = \"1GiB\"\n\
         [[step]]\nop = \"set\"\nauto_movable_ratio = 0\n\
         [[step]]\nop = \"add\"\nstart = \"16GiB\"\nsize = \"1GiB\"\n"
    );
    let r = run_in_process("set-ratio", &toml);
    assert_eq!(zones(&r, 0), vec![ZoneType::Movable; 8]);
    assert_eq!(zones(&r, 2), vec![ZoneType::Normal; 8]);
}

#[test]
fn set_steps_are_checked_like_the_machine_keys() {
    let vm = format!("[machine]\nplugin_dirs = [\"@PLUGINS@\"]\n{VM}");
    for (test, step, needle) in [
        ("set-empty", "[[step]]\nop = \"set\"\n", "`set` needs one of auto_online_blocks, online_policy"),
        ("set-bad-value", "[[step]]\nop = \"set\"\nauto_online_blocks = \"sometimes\"\n", "sometimes"),
        (
            "set-on-add",
            "[[step]]\nop = \"add\"\nstart = \"8GiB\"\nsize = \"1GiB\"\nauto_movable_ratio = 5\n",
            "auto_movable_ratio: a key of `set` steps, not of `add`",
        ),
        ("set-read-only", "[[step]]\nop = \"set\"\nmemmap_on_memory = true\n", "memmap_on_memory"),
    ] {
        let config = write_config(test, P, &format!("{vm}\n{step}"));
        let run = run_host(P, &["--config", config.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{test}: {}", run.stdout);
        assert_eq!(run.stderr.lines().count(), 1, "{test}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{test}: {}", run.stderr);
        // Located: file:line:column.
        assert!(run.stderr.contains("scenario.toml:"), "{test}: {}", run.stderr);
    }
}
