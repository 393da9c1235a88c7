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
        _ => {
            eprintln!("usage: fuzz-stable config|steps [--seconds N] [--seed N]");
            std::process::exit(2);
        }
    };
    // Seeds: the shipped configs (for `config`), random bytes otherwise.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(root.join("configs"))
        .map(|d| d.filter_map(Result::ok).filter_map(|e| std::fs::read(e.path()).ok()).collect())
        .unwrap_or_default();
    seeds.push(b"[machine]\n".to_vec());
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut execs, mut crashes) = (0u64, 0u64);
    while Instant::now() < deadline {
        let input = if target == "config" { mutate(&mut rng, &seeds) } else { (0..rng.below(4096)).map(|_| rng.next() as u8).collect() };
        execs += 1;
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
