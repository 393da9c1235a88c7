//! The `host` binary: run a scenario, list plugins. Errors print as one line and exit 2.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use hotplug_core::size::count_of;
use hotplug_host::loader::{self, Loader};
use hotplug_host::runner::{self, RunOptions, Strategies};
use hotplug_host::views::View;
use hotplug_host::{config, conformance, output, report, scenario};

/// Model Linux memory hot-add and hot-remove, with the memmap strategy loaded as a plugin.
#[derive(Debug, Parser)]
#[command(name = "host", version = concat!(env!("CARGO_PKG_VERSION"), " (hotplug-lab)"), about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// The scenario to run (a path, or the name of a shipped config such as small-vm.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Run every add step with this [[strategy]] instead of the one it names.
    #[arg(long, value_name = "NAME")]
    strategy: Option<String>,
    /// Check the model's invariants after every step, and that every failed step left the
    /// model exactly as it was (always on in debug builds; a copy of the model per step).
    #[arg(long)]
    check_invariants: bool,
    /// Print this kernel file instead of the report (repeatable): zoneinfo, iomem, meminfo.
    #[arg(long = "view", value_enum, value_name = "FILE")]
    views: Vec<ViewArg>,
    /// Show the views (and the sysfs tree) for the state after step N (0: right after boot).
    #[arg(long, value_name = "N")]
    view_after: Option<usize>,
    /// Write /sys/devices/system/memory as files into DIR (for `diff -r` with a real machine).
    #[arg(long, value_name = "DIR")]
    sysfs_out: Option<PathBuf>,
    /// Write a system root into DIR: sys/devices/system/{memory,node} with the block-node
    /// links, and proc/{iomem,zoneinfo,meminfo} (for `lsmem --sysroot DIR`).
    #[arg(long, value_name = "DIR")]
    sysroot_out: Option<PathBuf>,
    /// Draw the memory map after the last step (or --view-after N) as an SVG picture in
    /// FILE: ranges by owner, the memmap inside them, hex and human labels (docs/report.md).
    /// A compare config writes one per run, FILE-<strategy>.svg.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// With --svg: one map per step instead, FILE-stepN.svg (step 0: right after boot).
    #[arg(long, requires = "svg")]
    svg_each: bool,
    /// Print the time each step took and the peak memory on standard error.
    #[arg(long)]
    timings: bool,
    /// Search DIR for plugins first (repeatable, for every command; then
    /// HOTPLUG_PLUGIN_PATH, the config's plugin_dirs, the directory of this binary).
    #[arg(long = "plugin-dir", value_name = "DIR", global = true)]
    plugin_dirs: Vec<PathBuf>,
    /// Load plugin files that are world-writable or owned by another user, or that lie in
    /// such a directory (for every command).
    #[arg(long, global = true)]
    allow_unsafe_plugin_path: bool,
    /// Run every strategy's plugin in a child process of its own, called over a pipe: a
    /// crash, exit or hang of the plugin fails that step (EPLUGIN) and the run goes on.
    #[arg(long)]
    isolate: bool,
    /// Abandon the run (one line, exit 3) when a single plugin call takes longer than
    /// this many seconds: a hang becomes an error, not a stuck job (with --isolate, only
    /// that step fails). 0: wait for ever.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, global = true, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    plugin_timeout: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the plugin conformance suite on a plugin (a path, or a name found in --dir).
    /// Exit 0: every check passed; 1: some check failed; 2: the plugin cannot be loaded.
    Conformance {
        /// The plugin: a path to its library, or its name (e.g. system-ram).
        plugin: String,
        /// A directory to look for a plugin given by name (repeatable; then next to host).
        #[arg(long = "dir", value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Output format (junit: JUnit XML, for CI test-result pages).
        #[arg(long, value_enum, default_value_t = SuiteFormat::Text)]
        format: SuiteFormat,
        /// Also write the report as JUnit XML to FILE, whatever --format prints.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Run only the checks whose name matches (`*` wildcards; else a substring).
        #[arg(long, value_name = "PATTERN")]
        only: Option<String>,
        /// Do not run the checks whose name matches (repeatable; reported as skipped).
        #[arg(long, value_name = "PATTERN")]
        skip: Vec<String>,
        /// The plugin's options, as TOML text (what a [[strategy]]'s `options` table holds).
        #[arg(long, value_name = "TOML", default_value = "")]
        options: String,
        /// Fail a check whose process runs longer than this many seconds (1 to 86,400);
        /// its whole process group is killed.
        #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        timeout: u64,
    },
    /// One conformance check in this process (what `conformance` runs per check).
    #[command(hide = true)]
    ConformanceChild {
        #[arg(long)]
        check: String,
        /// Write the verdict here, after the nonce read from standard input (else stdout).
        #[arg(long)]
        verdict_fd: Option<i32>,
        #[arg(long = "dir")]
        dirs: Vec<PathBuf>,
        #[arg(long, default_value = "")]
        options: String,
        plugin: String,
    },
    /// Capture a machine's memory-hotplug state (read-only): proc/iomem, proc/zoneinfo,
    /// proc/meminfo, /sys/devices/system/memory, the memory_hotplug parameters.
    Snapshot {
        /// The root to read from (/ for this machine).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Where to write the capture (created; must not exist or be empty).
        #[arg(long)]
        out: PathBuf,
        /// Wait up to this many seconds for the zone counters to reach MemTotal (deferred
        /// struct-page initialisation still running after boot) before capturing.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        settle: u64,
    },
    /// Serve one plugin's calls over stdin/stdout (what --isolate runs per strategy).
    #[command(hide = true)]
    PluginServer,
    /// List the shipped scenarios built into this binary, each with the question it answers.
    Configs,
    /// Validate a config without running its steps: its keys and values, the geometry
    /// and machine (it boots), every plugin found and loaded with its options checked
    /// against the plugin's schema. Exit 0 when all holds, 2 with the first problem.
    Check {
        /// The config (a path, or a shipped config's name).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// For the machine a config describes (after its own steps): the largest single
    /// hot-add that succeeds with each strategy, and a sequence of hot-adds, onlined one
    /// by one, that reaches the target, or why none can (docs/plan.md).
    Plan {
        /// The config (a path, or a shipped config's name).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The size to reach (default: the config's `[plan] target`).
        #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
        target: Option<u64>,
        /// Where the adds start (default: `[plan] start`, else above all memory).
        #[arg(long, value_name = "ADDRESS", value_parser = parse_size_arg)]
        start: Option<u64>,
        /// Plan with this strategy only (repeatable; default: `[plan] strategies`, else
        /// every strategy that can take System RAM).
        #[arg(long = "strategy", value_name = "NAME")]
        strategies: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Write the config with the first planned strategy's sequence appended as steps:
        /// a scenario that runs the plan (put it beside the config so relative paths hold).
        #[arg(long, value_name = "FILE")]
        write_scenario: Option<PathBuf>,
    },
    /// Run a config over a grid of values, each point with each strategy, in parallel: a
    /// table of what every run ended with (hot-added, online, memmap and where it lives,
    /// the first failed step), --csv and --chart for plotting (docs/sweep.md).
    Sweep {
        /// The config (a path, or a shipped config's name).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// A config value to vary (repeatable; the grid is every combination): a dotted
        /// path (a [[step]] by its number, a [[strategy]] by its name) and its values as a
        /// list or a range: step.2.size=1GiB..1TiB:x2, machine.memory_block_size=128MiB,2GiB,
        /// machine.auto_movable_ratio=100..400:+100.
        #[arg(long = "vary", value_name = "KEY=VALUES", required = true, value_parser = parse_vary_arg)]
        varies: Vec<hotplug_host::sweep::Vary>,
        /// Run every point with this [[strategy]] forced on its add steps (repeatable;
        /// default: the config's compare list, else its steps as written).
        #[arg(long = "strategy", value_name = "NAME")]
        strategies: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also write one CSV line per run to FILE (exact bytes and pages, the errno of the first failed step).
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Also draw --chart-metric against the first --vary's values, one line per
        /// strategy, as an SVG line chart in FILE.
        #[arg(long, value_name = "FILE")]
        chart: Option<PathBuf>,
        /// What --chart plots.
        #[arg(long, value_enum, value_name = "METRIC", default_value_t = hotplug_host::svg::chart::ChartMetric::Share)]
        chart_metric: hotplug_host::svg::chart::ChartMetric,
        /// Worker threads (default: one per core).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
        jobs: Option<u16>,
        /// A point whose config is invalid at its values (or whose plugins do not load)
        /// becomes a row saying why, instead of ending the sweep with exit 2.
        #[arg(long)]
        keep_going: bool,
    },
    /// Serve the model live as the kernel's memory sysfs over FUSE at MOUNTPOINT (after the
    /// config's steps): sys/devices/system/{memory,node}, proc/{iomem,zoneinfo,meminfo},
    /// hotplug-lab/{ctl,events,state.json}. Writes online, offline, probe and uevent as the
    /// kernel does; lsmem --sysroot MOUNTPOINT works as it is. Until Ctrl-C or fusermount3
    /// -u (docs/mount.md).
    Mount {
        /// The config (a path, or a shipped config's name).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// An empty directory to mount on.
        mountpoint: PathBuf,
        /// Also append one line per memory-block uevent to FILE.
        #[arg(long, value_name = "FILE")]
        uevent_log: Option<PathBuf>,
        /// Run every strategy's plugin in a child process of its own (as `host --isolate`;
        /// `isolate = true` in the config does it for one): a crash, exit or hang of the
        /// plugin fails only the write that called it (EIO), and the mount goes on.
        #[arg(long)]
        isolate: bool,
        /// Check the model's invariants after the config's steps and after every write,
        /// and that a refused write left it as it was (a copy of the model per write): a
        /// broken one is undone and the write fails with EIO.
        #[arg(long)]
        check_invariants: bool,
    },
    /// Write a new strategy plugin crate, ready for `cargo test` (the conformance suite)
    /// and `host --config scenario.toml`; an existing directory is never touched.
    NewPlugin {
        /// The crate's name: lowercase letters, digits, '-' and '_' (e.g. cxl-near).
        name: String,
        /// Where to create the crate's directory (default: the current directory).
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// hotplug-lab's core/ directory, when this host was not built from a checkout.
        #[arg(long, value_name = "PATH")]
        core: Option<PathBuf>,
    },
    /// List the plugins found in directories, with their versions or why they fail to load.
    Plugins {
        /// A directory to search (repeatable; default: next to the host binary).
        #[arg(long = "dir", value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Also show each plugin's options and which optional operations of its contract it provides.
        #[arg(long, short)]
        verbose: bool,
        /// Also list this repository's test fixtures (broken-*, plugin-contract-*).
        #[arg(long)]
        all: bool,
        /// Output format (json: one object per library, with its options; docs/cli.md).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

fn parse_vary_arg(text: &str) -> Result<hotplug_host::sweep::Vary, String> {
    hotplug_host::sweep::Vary::parse(text)
}

/// The kernel files `--view` can print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ViewArg {
    Zoneinfo,
    Iomem,
    Meminfo,
}

impl ViewArg {
    fn view(self) -> View {
        match self {
            ViewArg::Zoneinfo => View::Zoneinfo,
            ViewArg::Iomem => View::Iomem,
            ViewArg::Meminfo => View::Meminfo,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// The conformance report's formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SuiteFormat {
    Text,
    Json,
    Junit,
}

/// `host new-plugin`: the crate is written by the library; this prints where, and what next.
fn new_plugin(name: &str, dir: &Path, core: Option<&Path>) -> anyhow::Result<ExitCode> {
    let host = std::env::current_exe().and_then(|p| p.canonicalize()).context("cannot tell where this host binary is")?;
    let request =
        hotplug_host::new_plugin::NewPlugin { name: name.to_string(), parent: dir.to_path_buf(), core: core.map(Path::to_path_buf), host };
    let created = hotplug_host::new_plugin::create(&request)?;
    output::print(&format!("created {name} in {}\nnext: cd {} && cargo test\n", created.display(), created.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// Rust ignores SIGPIPE, so a closed stdout (`host ... | head`) would make the next print
/// panic. Restore the default: the process ends quietly, as `cat` or `grep` would.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: signal() with SIG_DFL installs no handler; nothing else runs yet.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    restore_sigpipe();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,fuser=error")).format_timestamp(None).init();
    let cli = Cli::parse();
    // From here on plugin code may run: the report's stdout is the host's alone, and a
    // plugin that ends the process or hangs is named in one line (exit 3).
    output::claim_stdout();
    let timeout = (cli.plugin_timeout > 0).then(|| std::time::Duration::from_secs(cli.plugin_timeout));
    // An isolated plugin's process is watched from outside: its parent reports how it
    // ended (a signal, an exit code, a timeout) as that step's failure.
    if !matches!(cli.command, Some(Command::PluginServer)) {
        loader::watch::install(timeout);
    }
    let result = match &cli.command {
        Some(Command::Configs) => {
            let list: String = hotplug_host::shipped::CONFIGS.iter().map(|c| format!("{:<24} {}\n", c.name, c.question())).collect();
            output::print(&list).map(|()| ExitCode::SUCCESS).map_err(Into::into)
        }
        Some(Command::NewPlugin { name, dir, core }) => new_plugin(name, dir, core.as_deref()),
        Some(Command::Check { config }) => check_config(&cli, config),
        Some(Command::Plan { config, target, start, strategies, format, write_scenario }) => {
            let args = PlanArgs { target: *target, start: *start, strategies, format: *format, write_scenario: write_scenario.as_deref() };
            run_plan(&cli, config, &args)
        }
        Some(Command::Sweep { config, varies, strategies, format, csv, chart, chart_metric, jobs, keep_going }) => {
            let args = SweepArgs {
                varies,
                strategies,
                keep_going: *keep_going,
                format: *format,
                csv: csv.as_deref(),
                chart: chart.as_deref(),
                metric: *chart_metric,
                jobs: *jobs,
            };
            run_sweep(&cli, config, &args)
        }
        Some(Command::Mount { config, mountpoint, uevent_log, isolate, check_invariants }) => {
            let args = MountArgs { uevent_log: uevent_log.as_deref(), isolate: *isolate, check_invariants: *check_invariants };
            run_mount(&cli, config, mountpoint, &args)
        }
        Some(Command::PluginServer) => loader::server::serve().map(|()| ExitCode::SUCCESS).map_err(anyhow::Error::msg),
        Some(Command::Plugins { dirs, verbose, all, format }) => {
            let dirs = [loader::plugin_path(&cli.plugin_dirs), dirs.clone()].concat();
            list_plugins(&dirs, *verbose, *all, *format, cli.allow_unsafe_plugin_path)
        }
        Some(Command::Snapshot { root, out, settle }) => {
            hotplug_host::snapshot::take(root, out, std::time::Duration::from_secs(*settle)).map_err(anyhow::Error::msg).map(|taken| {
                if let Some(gap) = taken.unsettled {
                    eprintln!("host: warning: {gap} (waited {settle} s): the capture's counters are partial; take it again later");
                }
                eprintln!("host: captured {} files from {} into {}", taken.files, root.display(), out.display());
                ExitCode::SUCCESS
            })
        }
        Some(Command::Conformance { plugin, dirs, format, junit, only, skip, options, timeout }) => {
            let suite = conformance::SuiteOptions {
                dirs: [loader::plugin_path(&cli.plugin_dirs), dirs.clone()].concat(),
                options: options.clone(),
                only: only.clone(),
                skip: skip.clone(),
                allow_unsafe_plugin_path: cli.allow_unsafe_plugin_path,
                timeout: std::time::Duration::from_secs(*timeout),
            };
            run_conformance(plugin, &suite, *format, junit.as_deref())
        }
        Some(Command::ConformanceChild { check, verdict_fd, dirs, options, plugin }) => {
            // The nonce first, before any plugin code is loaded (suite.rs: why).
            let nonce = verdict_fd.map(|_| read_nonce());
            let child = conformance::ChildOptions {
                dirs: [loader::plugin_path(&cli.plugin_dirs), dirs.clone()].concat(),
                options: options.clone(),
                allow_unsafe_plugin_path: cli.allow_unsafe_plugin_path,
            };
            let out = conformance::run_child(check, plugin, &child);
            serde_json::to_string(&out)
                .context("the check's outcome does not serialise")
                .and_then(|json| match (verdict_fd, nonce) {
                    (Some(fd), Some(nonce)) => write_verdict(*fd, &format!("{nonce} {json}\n")),
                    _ => output::println(&json).map_err(Into::into),
                })
                .map(|()| ExitCode::SUCCESS)
        }
        None => match &cli.config {
            Some(path) => run_config(&cli, path),
            None => Err(anyhow::anyhow!("nothing to do: give --config FILE, or a command (see host --help)")),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("host: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A conformance child's nonce: one line of standard input, at most 128 bytes.
fn read_nonce() -> String {
    let bytes = hotplug_host::files::read_limited(std::io::stdin().lock(), 128).unwrap_or_default();
    String::from_utf8_lossy(&bytes).lines().next().unwrap_or_default().trim().to_string()
}

/// Write a conformance child's verdict line to the descriptor the parent gave it.
fn write_verdict(fd: i32, line: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::fd::FromRawFd as _;
    anyhow::ensure!(fd > 2, "--verdict-fd {fd}: not a descriptor of its own");
    // SAFETY: the parent opened `fd` for this process (suite.rs spawn); nothing else here
    // owns it, and the File is its only owner from now on.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(line.as_bytes()).context("cannot write the verdict")
}

/// Read the config `path`: the file, if there is one or the path names a directory;
/// else the shipped config of that name (built in, so it works after `cargo install`
/// and from any directory); else the configs/ file of the source tree (the captured
/// machine, which needs its files). Unknown names get the closest shipped ones.
fn load_config(path: &Path) -> anyhow::Result<(PathBuf, config::Loaded)> {
    if config::is_stdin(path) {
        return Ok((path.to_path_buf(), config::load(path)?));
    }
    if path.exists() || path.components().count() > 1 {
        return Ok((path.to_path_buf(), config::load(path)?));
    }
    let name = path.to_string_lossy();
    if let Some(c) = hotplug_host::shipped::find(&name) {
        let shown = hotplug_host::shipped::path_of(c);
        let loaded = config::parse(&shown, c.text.to_string())?;
        return Ok((shown, loaded));
    }
    let in_tree = hotplug_host::shipped::source_dir().join(path);
    if let Ok(found) = in_tree.canonicalize() {
        return Ok((found.clone(), config::load(&found)?));
    }
    match config::load(path) {
        Ok(loaded) => Ok((path.to_path_buf(), loaded)),
        Err(e) => match hotplug_host::shipped::closest(&name).as_slice() {
            [] => Err(e.into()),
            near => Err(anyhow::anyhow!("{e}; shipped configs with a similar name: {} (host configs lists them all)", near.join(", "))),
        },
    }
}

/// How isolated plugins run (`--isolate`, `isolate = true`): in a child process of this
/// binary, watched with the run's `--plugin-timeout`.
fn isolation_options(cli: &Cli) -> anyhow::Result<hotplug_host::loader::isolated::IsolationOptions> {
    let exe = std::env::current_exe().context("cannot find the host binary to run isolated plugins in")?;
    Ok(hotplug_host::loader::isolated::IsolationOptions {
        exe,
        timeout: (cli.plugin_timeout > 0).then(|| std::time::Duration::from_secs(cli.plugin_timeout)),
        allow_unsafe_path: cli.allow_unsafe_plugin_path,
    })
}

fn run_config(cli: &Cli, path: &Path) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let (path, loaded) = load_config(path)?;
    let parsed = started.elapsed();
    let mut scenario = scenario::resolve(&loaded, cli.strategy.as_deref())?;
    scenario.plugin_dirs.splice(0..0, loader::plugin_path(&cli.plugin_dirs));
    // The scenario holds all it needs (lines for messages included): the parsed file
    // goes before the run, so a large config's TOML tree and the run never share memory.
    drop(loaded);
    let resolved = started.elapsed();
    let mut loader = Loader::new(cli.allow_unsafe_plugin_path);
    let isolation = isolation_options(cli)?;
    let strategies = Strategies::load_isolating(&scenario, &mut loader, Some((&isolation, cli.isolate)))?;
    if let Some(n) = cli.view_after {
        if n > scenario.steps.len() {
            anyhow::bail!("--view-after {n}: {} has {} step(s) (0 is the boot state)", path.display(), scenario.steps.len());
        }
    }
    let options = RunOptions { check_invariants: cli.check_invariants, keep_history: cli.svg_each, stop_after: cli.view_after };
    let names: Vec<Option<String>> = match (&scenario.compare, &cli.strategy) {
        (Some(list), None) => list.iter().cloned().map(Some).collect(),
        (_, s) => vec![s.clone()],
    };
    let prepared = hotplug_host::timings::Prepare { parse: parsed, resolve: resolved - parsed, plugins: started.elapsed() - resolved };
    let mut runs = Vec::new();
    for name in &names {
        runs.push(runner::run(&scenario, &strategies, name.as_deref(), &options).context("run failed")?);
    }
    let shown = path.display().to_string();
    if !cli.views.is_empty() {
        output::print(&render_views(&cli.views, &runs))?;
        for run in &runs {
            for s in run.steps.iter().filter(|s| !s.matched) {
                eprintln!("host: step #{}: expected {}, got {}", s.index, s.expect, s.outcome.code());
            }
        }
    } else {
        match cli.format {
            Format::Json => output::println(&report::json(&shown, &runs))?,
            Format::Text => {
                let paint = report::Paint { colour: output::colour() };
                let mut text = String::new();
                for (i, run) in runs.iter().enumerate() {
                    if i > 0 {
                        text.push('\n');
                    }
                    text.push_str(&report::text_painted(&shown, run, paint));
                }
                if runs.len() > 1 {
                    text.push('\n');
                    text.push_str(&report::comparison(&runs));
                }
                output::print(&text)?;
            }
        }
    }
    if cli.check_invariants {
        // Said once, on stderr, so the report stays what it is without the flag.
        let steps: usize = runs.iter().map(|r| r.steps.len()).sum();
        eprintln!("host: invariants held after every step ({steps} checked in {})", count_of(runs.len() as u64, "run"));
    }
    if cli.timings {
        eprint!("{}", hotplug_host::timings::text(prepared, &runs, hotplug_host::timings::peak_rss_bytes()));
    }
    // The trees after the report: a tree that cannot be written (a file in the way, a
    // full disk) is one error line after a report that was printed whole, and leaves no
    // half-written directory (files::write_tree).
    if let Some(file) = &cli.svg {
        write_maps(file, cli.svg_each, &shown, &runs)?;
    }
    if let Some(dir) = &cli.sysfs_out {
        // One tree: the first run's (a compare config's runs share the machine).
        let n = hotplug_host::views::sysfs::write(&runs[0].model, dir).map_err(anyhow::Error::msg)?;
        log::info!("wrote {n} sysfs files under {}", dir.display());
    }
    if let Some(dir) = &cli.sysroot_out {
        let n = hotplug_host::views::sysroot::write(&runs[0].model, dir).map_err(anyhow::Error::msg)?;
        log::info!("wrote {n} files and links under {}", dir.display());
    }
    Ok(if runs.iter().all(runner::RunReport::all_matched) { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `--svg FILE`: each run's memory map after its last step, or after every step with
/// `--svg-each`; one line on stderr says where they went.
fn write_maps(file: &Path, each: bool, config: &str, runs: &[runner::RunReport]) -> anyhow::Result<()> {
    use hotplug_host::svg::map::{file_name, memory_map, MapHeading};
    let mut written = Vec::new();
    for run in runs {
        let strategy = run.strategy.as_deref();
        let named = (runs.len() > 1).then_some(strategy).flatten();
        let mut maps = Vec::new();
        if each {
            for (i, model) in run.history.iter().enumerate() {
                let moment = match i.checked_sub(1).and_then(|k| run.steps.get(k)) {
                    None => "after boot".to_string(),
                    Some(s) => format!("after step {} ({})", s.index, s.op.as_str()),
                };
                maps.push((file_name(file, named, Some(i)), model, moment));
            }
        } else {
            let moment = match run.steps.last() {
                None => "after boot".to_string(),
                Some(s) => format!("after step {} ({})", s.index, s.op.as_str()),
            };
            maps.push((file_name(file, named, None), &run.model, moment));
        }
        for (path, model, moment) in maps {
            let text = memory_map(model, &MapHeading { config, strategy, moment });
            std::fs::write(&path, text).with_context(|| format!("cannot write the memory map to {}", path.display()))?;
            written.push(path);
        }
    }
    match written.as_slice() {
        [one] => eprintln!("host: memory map written to {}", one.display()),
        [first, .., last] => eprintln!("host: {} memory maps written: {} ... {}", written.len(), first.display(), last.display()),
        [] => {}
    }
    Ok(())
}

/// The asked-for views of each run; `==> NAME <==` headers (as `head` prints them) when
/// there is more than one.
fn render_views(views: &[ViewArg], runs: &[runner::RunReport]) -> String {
    let mut sections = Vec::new();
    for run in runs {
        for v in views {
            let view = v.view();
            let name = match (&run.strategy, runs.len()) {
                (Some(s), n) if n > 1 => format!("{} (strategy {s})", view.name()),
                _ => view.name().to_string(),
            };
            sections.push((name, view.render(&run.model)));
        }
    }
    if sections.len() == 1 {
        return sections.pop().map(|(_, text)| text).unwrap_or_default();
    }
    sections.iter().map(|(name, text)| format!("==> {name} <==\n{text}")).collect::<Vec<_>>().join("\n")
}

fn run_conformance(plugin: &str, suite: &conformance::SuiteOptions, format: SuiteFormat, junit: Option<&Path>) -> anyhow::Result<ExitCode> {
    let names = || conformance::CHECKS.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
    for (flag, pattern) in suite.only.iter().map(|p| ("--only", p)).chain(suite.skip.iter().map(|p| ("--skip", p))) {
        if !conformance::CHECKS.iter().any(|c| conformance::matches(pattern, c.name)) {
            anyhow::bail!("{flag} {pattern}: no check matches (checks: {})", names());
        }
    }
    let exe = std::env::current_exe().context("cannot find the host binary to run checks in")?;
    let report = conformance::run(&exe, plugin, suite);
    if let Some(file) = junit {
        std::fs::write(file, report.junit()).with_context(|| format!("cannot write the JUnit report to {}", file.display()))?;
    }
    match format {
        SuiteFormat::Json => output::println(&report.json())?,
        SuiteFormat::Junit => output::print(&report.junit())?,
        SuiteFormat::Text if report.load_error.is_some() => eprint!("host: error: {}", report.text()),
        SuiteFormat::Text => output::print(&report.text())?,
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// `host plugins --verbose`: the layout a library loaded through, what of its contract's
/// optional operations it provides (and the defaults it gets for the rest), its options.
fn plugin_details(lib: &loader::LoadedLibrary) -> String {
    let mut out = String::new();
    let schema = lib.options_schema();
    if lib.layout() == "1.0" {
        out.push_str("\n    layout: contract 1.0, adapted to 1.1 by the host (docs/abi.md section 5)");
        out.push_str("\n    provides: nothing optional; defaults: options reach its constructor unchecked, the host refuses unclaimed kinds, no node facts or distances, no memmap_nodes");
    } else {
        out.push_str("\n    layout: contract 1.1");
        let declared = match schema {
            Some(s) => format!("options_schema ({})", count_of(s.len() as u64, "option")),
            None => "no options_schema (its options reach its constructor unchecked)".to_string(),
        };
        out.push_str(&format!("\n    provides: {declared}"));
    }
    if let Some(schema) = schema {
        if schema.is_empty() {
            out.push_str("\n    options: none");
        }
        for o in schema {
            let ty = if o.ty == hotplug_core::OptionType::CHOICE {
                o.choice_list().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(" | ")
            } else {
                o.ty.name().to_string()
            };
            let default = match o.default.as_str() {
                "" => String::new(),
                d if d.starts_with('(') => format!(" (default: {})", clean(d.trim_start_matches('(').trim_end_matches(')'))),
                d => format!(" (default {})", clean(d)),
            };
            out.push_str(&format!("\n    option {} = {ty}{default}: {}", clean(o.name.as_str()), clean(o.help.as_str())));
        }
    }
    out
}

/// Plugin text for a terminal: control characters shown as `?`.
fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn list_plugins(dirs: &[PathBuf], verbose: bool, all: bool, format: Format, allow_unsafe: bool) -> anyhow::Result<ExitCode> {
    let mut json = Vec::new();
    let dirs: Vec<PathBuf> = if dirs.is_empty() { loader::exe_dir().into_iter().collect() } else { dirs.to_vec() };
    let mut loader = Loader::new(allow_unsafe);
    let geometry = hotplug_host::model::geometry::preset(hotplug_core::Arch::X86_64);
    for dir in &dirs {
        let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read plugin directory {}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(std::env::consts::DLL_PREFIX) && n.ends_with(std::env::consts::DLL_SUFFIX))
                    && (all || !loader::is_test_fixture(p))
            })
            .collect();
        files.sort();
        for file in files {
            if format == Format::Json {
                json.push(plugin_json(&mut loader, &file, geometry));
                continue;
            }
            let line = match loader.load(&file) {
                Ok(lib) => {
                    let mut text = match lib.instantiate("", geometry) {
                        Ok(obj) => {
                            let info = obj.info();
                            format!(
                                "{:<24} {:<8} contract {:<6} handles {:<20} {}",
                                info.name.as_str(),
                                info.version.as_str(),
                                info.contract.to_string(),
                                info.kinds.names(),
                                file.display()
                            )
                        }
                        Err(e) => format!("{}: constructor failed with empty options: {}", file.display(), e.message),
                    };
                    if verbose {
                        text.push_str(&plugin_details(&lib));
                    }
                    text
                }
                Err(e) => e.to_string(),
            };
            output::println(&line)?;
        }
    }
    if format == Format::Json {
        let list = serde_json::json!({ "schema_version": 1, "kind": "plugins", "plugins": json });
        output::println(&serde_json::to_string_pretty(&list).context("the plugin list does not serialise")?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One library as `host plugins --format json` shows it: what it is, or why it does not
/// load; its declared options (plugin text, escaped as everywhere).
fn plugin_json(loader: &mut Loader, file: &Path, geometry: hotplug_core::Geometry) -> serde_json::Value {
    use hotplug_host::model::text::{plugin_text, MAX_PLUGIN_TEXT};
    let text = |s: &str| plugin_text(s, MAX_PLUGIN_TEXT);
    let path = file.display().to_string();
    let lib = match loader.load(file) {
        Ok(lib) => lib,
        Err(e) => return serde_json::json!({ "path": path, "loads": false, "error": e.to_string() }),
    };
    let options = lib.options_schema().map(|schema| {
        schema
            .iter()
            .map(|o| {
                let ty = if o.ty == hotplug_core::OptionType::CHOICE { "choice" } else { o.ty.name() };
                let choices: Vec<String> = o.choice_list().map(text).collect();
                serde_json::json!({ "name": text(o.name.as_str()), "type": ty, "choices": choices,
                    "default": text(o.default.as_str()), "help": text(o.help.as_str()) })
            })
            .collect::<Vec<_>>()
    });
    let mut entry = serde_json::json!({ "path": path, "loads": true, "layout": lib.layout(), "options": options });
    match lib.instantiate("", geometry) {
        Ok(obj) => {
            let info = obj.info();
            entry["name"] = text(info.name.as_str()).into();
            entry["version"] = text(info.version.as_str()).into();
            entry["contract"] = info.contract.to_string().into();
            entry["handles"] = info.kinds.list().into();
        }
        Err(e) => entry["error"] = format!("constructor failed with empty options: {}", text(e.message.as_str())).into(),
    }
    entry
}

/// A size on the command line, in the config's syntax (`12GiB`, `0x100000000`).
fn parse_size_arg(text: &str) -> Result<u64, String> {
    config::parse_size(text)
}

/// `host plan`'s options.
struct PlanArgs<'a> {
    target: Option<u64>,
    start: Option<u64>,
    strategies: &'a [String],
    format: Format,
    write_scenario: Option<&'a Path>,
}

fn run_plan(cli: &Cli, path: &Path, args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let (path, loaded) = load_config(path)?;
    let mut scenario = scenario::resolve(&loaded, None)?;
    scenario.plugin_dirs.splice(0..0, loader::plugin_path(&cli.plugin_dirs));
    if !args.strategies.is_empty() {
        for name in args.strategies {
            anyhow::ensure!(
                scenario.strategies.iter().any(|s| &s.name == name),
                "--strategy {name}: {} defines no such [[strategy]]",
                path.display()
            );
        }
        scenario.plan.strategies = args.strategies.to_vec();
        for st in scenario.strategies.iter_mut().filter(|s| args.strategies.contains(&s.name)) {
            if !st.needs.contains(&hotplug_core::RequestKind::SYSTEM_RAM) {
                st.needs.push(hotplug_core::RequestKind::SYSTEM_RAM);
            }
        }
    }
    scenario::default_plan_strategies(&mut scenario);
    let target = args
        .target
        .or(scenario.plan.target)
        .ok_or_else(|| anyhow::anyhow!("host plan: no target: give --target SIZE, or `target` in the config's [plan]"))?;
    let mut loader = Loader::new(cli.allow_unsafe_plugin_path);
    let strategies = Strategies::load_isolating(&scenario, &mut loader, None)?;
    let request = hotplug_host::plan::PlanRequest {
        target,
        start: args.start.or(scenario.plan.start),
        node: scenario.plan.node,
        strategies: scenario.plan.strategies.clone(),
    };
    let plan = hotplug_host::plan::plan(&scenario, &strategies, &request)?;
    let shown = path.display().to_string();
    match args.format {
        Format::Text => output::print(&report::plan::text(&shown, &plan))?,
        Format::Json => output::println(&report::plan_json(&shown, &plan))?,
    }
    if let Some(file) = args.write_scenario {
        let first = plan.strategies.first().context("no strategy to plan with")?;
        let mut text = loaded.text.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("\n# The plan of `host plan` for strategy {}:\n", first.strategy));
        text.push_str(&hotplug_host::plan::steps_toml(first, plan.node));
        std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))?;
    }
    let reached = plan.strategies.iter().any(|s| s.stuck.is_none());
    Ok(if reached { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `host check`: everything a run needs, short of running a step.
fn check_config(cli: &Cli, path: &Path) -> anyhow::Result<ExitCode> {
    let (path, loaded) = load_config(path)?;
    let mut scenario = scenario::resolve(&loaded, None)?;
    scenario.plugin_dirs.splice(0..0, loader::plugin_path(&cli.plugin_dirs));
    hotplug_host::model::Model::boot(&scenario.machine)
        .map_err(|e| anyhow::anyhow!("{}: the machine does not boot: {e}", path.display()))?;
    let mut loader = Loader::new(cli.allow_unsafe_plugin_path);
    Strategies::load_isolating(&scenario, &mut loader, None)?;
    let strategies: Vec<&str> = scenario.strategies.iter().map(|s| s.name.as_str()).collect();
    let strategies = match strategies.as_slice() {
        [] => "no strategy".to_string(),
        [one] => format!("1 strategy ({one})"),
        many => format!("{} strategies ({})", many.len(), many.join(", ")),
    };
    output::println(&format!(
        "{}: ok: {}, {strategies}, {}; the machine boots",
        path.display(),
        count_of(scenario.steps.len() as u64, "step"),
        count_of(scenario.machine.nodes.len() as u64, "node")
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `host sweep`'s arguments.
struct SweepArgs<'a> {
    varies: &'a [hotplug_host::sweep::Vary],
    strategies: &'a [String],
    keep_going: bool,
    format: Format,
    csv: Option<&'a Path>,
    chart: Option<&'a Path>,
    metric: hotplug_host::svg::chart::ChartMetric,
    jobs: Option<u16>,
}

/// `host sweep`: every point of the grid run, then the table (or JSON) on stdout and the
/// CSV and chart files. Failed steps are answers (exit 0); a grid that cannot run is exit 2.
fn run_sweep(cli: &Cli, path: &Path, args: &SweepArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal as _;
    let (path, loaded) = load_config(path)?;
    let request = hotplug_host::sweep::SweepRequest {
        varies: args.varies.to_vec(),
        strategies: args.strategies.to_vec(),
        plugin_dirs: loader::plugin_path(&cli.plugin_dirs),
        keep_going: args.keep_going,
    };
    let points = hotplug_host::sweep::vary::grid(args.varies).map_err(anyhow::Error::msg)?.len();
    // A bar only for a person watching: none in pipes, files and CI logs.
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(points as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} points, {elapsed} ({eta} left)") {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let loader = Loader::new(cli.allow_unsafe_plugin_path);
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.jobs {
        pool = pool.num_threads(usize::from(n));
    }
    let pool = pool.build().context("cannot start the sweep's worker threads")?;
    let swept = pool.install(|| hotplug_host::sweep::sweep(&path, &loaded.text, &request, &loader, &|| bar.inc(1)));
    bar.finish_and_clear();
    let swept = swept?;
    let shown = path.display().to_string();
    match args.format {
        Format::Json => output::println(&report::sweep::json(&shown, &swept))?,
        Format::Text => output::print(&report::sweep::text(&shown, &swept))?,
    }
    if let Some(file) = args.csv {
        let text = report::sweep::csv(&swept).context("cannot write the CSV")?;
        std::fs::write(file, text).with_context(|| format!("cannot write the CSV to {}", file.display()))?;
    }
    if let Some(file) = args.chart {
        let text = hotplug_host::svg::chart::line_chart(&shown, &swept, args.metric);
        std::fs::write(file, text).with_context(|| format!("cannot write the chart to {}", file.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `host mount`'s own options.
struct MountArgs<'a> {
    uevent_log: Option<&'a Path>,
    isolate: bool,
    check_invariants: bool,
}

/// `host mount`: run the config's steps, then serve the model at the mount point until
/// it is unmounted; one banner line on stderr says where and how to stop it.
fn run_mount(cli: &Cli, path: &Path, mount_point: &Path, args: &MountArgs) -> anyhow::Result<ExitCode> {
    use hotplug_host::mount;
    // The mount's own sockets (fusermount3's) may close first at unmount: an EPIPE there
    // is an error value, not the end of the process (main restores SIGPIPE for reports).
    #[cfg(unix)]
    // SAFETY: SIG_IGN installs no handler; no other thread runs yet.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    // Everything that can be refused is refused before anything runs or mounts.
    let mount_point = mount::check_mount_point(mount_point)?;
    let log = args.uevent_log.map(mount::open_uevent_log).transpose()?;
    let (path, loaded) = load_config(path)?;
    let mut scenario = scenario::resolve(&loaded, None)?;
    scenario.plugin_dirs.splice(0..0, loader::plugin_path(&cli.plugin_dirs));
    // A System RAM strategy for `probe`: the config's first, else the built-in default.
    scenario::default_plan_strategies(&mut scenario);
    let probe_strategy = scenario.plan.strategies.first().cloned().context("no strategy can add System RAM")?;
    let mut loader = Loader::new(cli.allow_unsafe_plugin_path);
    let isolation = (isolation_options(cli)?, args.isolate);
    let strategies = Strategies::load_isolating(&scenario, &mut loader, Some((&isolation.0, isolation.1)))?;
    let options = RunOptions { check_invariants: args.check_invariants, keep_history: false, stop_after: None };
    let run = runner::run(&scenario, &strategies, None, &options).context("run failed")?;
    let unexpected = run.steps.iter().filter(|s| !s.matched).count();
    let plugins = mount::live::Plugins { strategies, loader, plugin_dirs: scenario.plugin_dirs.clone(), isolation };
    let mut live = mount::live::Live::new(run.model, plugins, path.clone(), &loaded.text, probe_strategy);
    live.check_invariants = args.check_invariants;
    let shown = mount_point.display().to_string();
    let steps = count_of(run.steps.len() as u64, "step");
    mount::serve(live, &mount_point, log, || {
        let verdict = if unexpected == 0 { "as expected".to_string() } else { format!("{unexpected} not as expected") };
        eprintln!(
            "host: {} ({steps}, {verdict}) mounted at {shown}: lsmem --sysroot {shown}; stop with Ctrl-C or fusermount3 -u {shown}",
            path.display()
        );
    })?;
    eprintln!("host: {shown} unmounted");
    Ok(ExitCode::SUCCESS)
}
