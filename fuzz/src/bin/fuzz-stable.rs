//! A fuzzing harness for the stable toolchain: random and mutated inputs for a target,
//! for a given time, saving any input that panics to fuzz/artifacts/.
//!
//! cargo run --release --bin fuzz-stable -- config --seconds 600 [--seed N]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

/// xorshift64*: enough randomness for input generation, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Text fragments that make mutated configs reach deep into the resolver.
const TOKENS: &[&str] = &[
    "[machine]\n",
    "[[step]]\n",
    "[[strategy]]\n",
    "[[machine.node]]\n",
    "op = \"add\"\n",
    "op = \"memremap\"\n",
    "op = \"grow\"\n",
    "op = \"shrink\"\n",
    "op = \"remove\"\n",
    "op = \"online\"\n",
    "op = \"offline\"\n",
    "op = \"memunmap\"\n",
    "op = \"set\"\n",
    "online_type = \"online_movable\"\n",
    "unmovable = true\n",
    "unit = \"0\"\n",
    "unit = \"3\"\n",
    "unit = \"1GiB\"\n",
    "region_size = \"2GiB\"\n",
    "block_size = \"4MiB\"\n",
    "vmemmap_shift = 4294967295\n",
    "vmemmap_shift = 9\n",
    "pgmap_type = \"private\"\n",
    "resource = \"dax0.0\"\n",
    "min_free_kbytes = 1\n",
    "transparent_hugepage = \"never\"\n",
    "expect = \"any\"\n",
    "size = \"8EiB\"\n",
    "start = \"0xfffffffff0000000\"\n",
    "node = 1\n",
    "start = \"4GiB\"\n",
    "size = \"1GiB\"\n",
    "size = \"0\"\n",
    "start = \"0xffffffffffffffff\"\n",
    "size = \"16EiB\"\n",
    "memory_block_size = \"auto\"\n",
    "hypervisor = true\n",
    "id = 0\n",
    "boot = [{ start = \"0\", size = \"1GiB\" }]\n",
    "page_size = \"64KiB\"\n",
    "section_size = \"1KiB\"\n",
    "max_phys_bits = 64\n",
    "max_phys_bits = 0\n",
    "struct_page_size = 0\n",
    "pageblock_pages = 0\n",
    "expect = { a = \"ok\" }\n",
    "compare = [\"a\"]\n",
    "ranges = []\n",
    "from = \"/\"\n",
    "device = \"d\"\n",
    "driver = \"dax-kmem\"\n",
    "online_policy = \"auto-movable\"\n",
    "auto_movable_ratio = 0\n",
    "min_free = \"1PiB\"\n",
    "\"",
    "=",
    "{",
    "}",
    "[",
    "]",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(8) {
        let pos = rng.below(data.len() + 1);
        match rng.below(5) {
            0 => data.splice(pos..pos, TOKENS[rng.below(TOKENS.len())].bytes()).for_each(drop),
            1 if !data.is_empty() => {
                let end = (pos + rng.below(32)).min(data.len());
                data.drain(pos.min(end)..end);
            }
            2 if pos < data.len() => data[pos] = rng.next() as u8,
            3 => data.splice(pos..pos, std::iter::repeat_n(rng.next() as u8 % 10 + b'0', rng.below(24))).for_each(drop),
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let to = (from + rng.below(200)).min(other.len());
                data.splice(pos..pos, other[from..to].iter().copied()).for_each(drop);
            }
        }
    }
    data
}

/// A capture as capture_target reads its input: the files joined with 0xff, then the
/// blocks' `ID STATE` lines.
fn capture_seed(capture: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for rel in hotplug_fuzz::CAPTURE_FILES {
        out.extend(std::fs::read(capture.join(rel)).unwrap_or_default());
        out.push(0xff);
    }
    let memory = capture.join("sys/devices/system/memory");
    for entry in std::fs::read_dir(&memory).into_iter().flatten().filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_prefix("memory").filter(|id| id.parse::<u32>().is_ok()) {
            let state = std::fs::read_to_string(entry.path().join("state")).unwrap_or_default();
            out.extend(format!("{id} {}\n", state.trim()).bytes());
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target = args.get(1).cloned().unwrap_or_default();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).and_then(|v| v.parse::<u64>().ok());
    let seconds = value("--seconds").unwrap_or(60);
    let seed = value("--seed")
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1);
    let run: fn(&[u8]) = match target.as_str() {
        "config" => hotplug_fuzz::config_target,
        "steps" => hotplug_fuzz::steps_target,
        "capture" => hotplug_fuzz::capture_target,
        _ => {
            eprintln!("usage: fuzz-stable config|steps|capture [--seconds N] [--seed N]");
            std::process::exit(2);
        }
    };
    // Seeds: the shipped configs (config), the captured real machine (capture), random
    // bytes (steps).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seeds: Vec<Vec<u8>> = if target == "capture" {
        vec![capture_seed(&root.join("../shared/data/real-machines/x86_64-vm-6.18-24g"))]
    } else {
        std::fs::read_dir(root.join("configs"))
            .map(|d| d.filter_map(Result::ok).filter_map(|e| std::fs::read(e.path()).ok()).collect())
            .unwrap_or_default()
    };
    seeds.push(b"[machine]\n".to_vec());
    std::panic::set_hook(Box::new(|_| {}));
    // An input that runs for more than SLOW is a finding too (the promise: hostile
    // inputs end within seconds): the watchdog saves it and ends the run.
    const SLOW: Duration = Duration::from_secs(10);
    let current: &'static std::sync::Mutex<(Instant, Vec<u8>)> = Box::leak(Box::new(std::sync::Mutex::new((Instant::now(), Vec::new()))));
    let slow_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts").join(&target);
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        let (started, input) = current.lock().map(|c| (c.0, c.1.clone())).unwrap_or((Instant::now(), Vec::new()));
        if started.elapsed() > SLOW {
            let _ = std::fs::create_dir_all(&slow_dir);
            let file = slow_dir.join("slow");
            let _ = std::fs::write(&file, &input);
            eprintln!("SLOW (over {} s) saved to {}", SLOW.as_secs(), file.display());
            std::process::exit(1);
        }
    });
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut execs, mut crashes) = (0u64, 0u64);
    while Instant::now() < deadline {
        let input = if target == "steps" { (0..rng.below(4096)).map(|_| rng.next() as u8).collect() } else { mutate(&mut rng, &seeds) };
        execs += 1;
        if let Ok(mut c) = current.lock() {
            *c = (Instant::now(), input.clone());
        }
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| run(&input))) {
            crashes += 1;
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts").join(&target);
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("crash-{execs}"));
            let _ = std::fs::write(&file, &input);
            eprintln!("CRASH ({msg}) saved to {}", file.display());
        }
    }
    println!("{target}: {execs} inputs in {seconds} s, {crashes} crash(es), seed {seed}");
    if crashes > 0 {
        std::process::exit(1);
    }
}
