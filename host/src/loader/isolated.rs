//! The host's side of `--isolate`: a strategy whose plugin runs in a child process
//! (`host plugin-server`, [`super::server`]) and is called over a pipe, MemmapOps
//! included. The host never loads the plugin's code. When the child crashes, exits,
//! aborts or does not answer within the per-call timeout, that call fails with EPLUGIN
//! naming what happened; the step unwinds as for any plugin error and the run goes on,
//! and the next call starts a new child (a strategy keeps no state between calls that
//! the host relies on).

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::Duration;

use hotplug_core::{OptionSpec, OptionType, PluginError, PluginInfo, Request, RequestKind, RequestKinds, Restrictions};

use super::wire::{FromChild, ToChild, WCall, WFacts, WRequest, WRestrictions};
use super::{LoadError, MachineFacts};
use crate::model::ops::{ModelOps, StrategyHandle};

/// How to start and talk to a plugin's process.
#[derive(Debug, Clone)]
pub struct IsolationOptions {
    /// The `host` binary to run as `host plugin-server`.
    pub exe: PathBuf,
    /// Each call's answer must come within this (None: wait for ever).
    pub timeout: Option<Duration>,
    pub allow_unsafe_path: bool,
}

/// A live child: its stdin for requests, a thread's channel of its answers.
struct Server {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<Result<FromChild, String>>,
    /// Killed or found dead: the next call starts a new child.
    gone: bool,
}

impl Server {
    fn kill(&mut self) {
        crate::child::kill_group(&self.child);
        self.gone = true;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing stdin ends a healthy child; the group kill ends anything it left.
        crate::child::kill_group(&self.child);
        let _ = self.child.wait();
    }
}

/// A `[[strategy]]` whose plugin runs in its own process.
pub struct IsolatedStrategy {
    name: String,
    path: PathBuf,
    options: String,
    facts: WFacts,
    isolation: IsolationOptions,
    pub info: PluginInfo,
    /// What the plugin declares (leaked once: the contract's type borrows 'static text).
    schema: Option<&'static [OptionSpec]>,
    server: Mutex<Option<Server>>,
}

/// Why a call to an isolated plugin did not come back.
fn lost(call: &str, what: String) -> PluginError {
    PluginError::msg(format!("its isolated process {what} during {call}; the step is unwound and a new process serves the next call"))
}

/// "crashed (SIGABRT)", "exited with code 3".
fn describe(status: std::process::ExitStatus) -> String {
    if let Some((_, name)) = crate::child::signal(status) {
        return format!("crashed ({})", name.unwrap_or("a signal"));
    }
    match status.code() {
        Some(c) => format!("exited with code {c}"),
        None => "ended".into(),
    }
}

impl IsolatedStrategy {
    /// Start the plugin at `path` in a child and build its instance there. The host
    /// checks the path as the in-process loader does; the child loads it.
    ///
    /// `check_options` sees what the plugin declares before the instance is built (as
    /// the in-process loader checks a `[[strategy]]`'s options first).
    pub fn new<E>(
        name: &str,
        path: &Path,
        options: &str,
        facts: impl Into<MachineFacts>,
        needs: &[RequestKind],
        isolation: IsolationOptions,
        check_options: impl FnOnce(Option<&[OptionSpec]>) -> Result<(), E>,
    ) -> Result<Self, IsolatedError<E>> {
        let facts = WFacts::from(&facts.into());
        let mut s = IsolatedStrategy {
            name: name.to_string(),
            path: path.to_path_buf(),
            options: options.to_string(),
            facts,
            isolation,
            info: PluginInfo {
                name: path.display().to_string().into(),
                version: "".into(),
                contract: hotplug_core::ContractVersion::CURRENT,
                kinds: RequestKinds(0),
                flags: 0,
            },
            schema: None,
            server: Mutex::new(None),
        };
        let started = |e| match e {
            Started::Load(reason) => {
                IsolatedError::Instance(super::InstanceError::Load(LoadError::Isolated { path: path.display().to_string(), reason }))
            }
            Started::Refused(e) => IsolatedError::Instance(super::InstanceError::Options(e)),
        };
        let (mut server, schema) = s.load().map_err(started)?;
        check_options(schema).map_err(IsolatedError::Options)?;
        s.info = s.instantiate(&mut server).map_err(started)?;
        s.schema = schema;
        *s.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(server);
        for kind in needs {
            if !s.info.kinds.contains(*kind) {
                return Err(IsolatedError::Instance(super::InstanceError::Load(LoadError::UnhandledKind {
                    path: path.display().to_string(),
                    plugin: s.info.name.to_string(),
                    kind: kind.name().to_string(),
                    handles: s.info.kinds.names(),
                })));
            }
        }
        Ok(s)
    }

    /// The options the plugin declares, as its process reported them.
    pub fn options_schema(&self) -> Option<&'static [OptionSpec]> {
        self.schema
    }

    fn spawn(&self) -> Result<Server, String> {
        #[cfg(unix)]
        use std::os::unix::process::CommandExt as _;
        let mut cmd = Command::new(&self.isolation.exe);
        // The child never times out on its own: this side does, and kills it.
        cmd.args(["plugin-server", "--plugin-timeout", "0"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", self.isolation.exe.display()))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, answers) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let message = super::server::read_message::<FromChild>(&mut reader);
                let end = !matches!(message, Ok(Some(_)));
                let sent = match message {
                    Ok(Some(m)) => tx.send(Ok(m)),
                    Ok(None) => break,
                    Err(e) => tx.send(Err(e)),
                };
                if end || sent.is_err() {
                    break;
                }
            }
        });
        Ok(Server { child, stdin, answers, gone: false })
    }

    /// A new child with the plugin loaded: its declared options.
    fn load(&self) -> Result<(Server, Option<&'static [OptionSpec]>), Started> {
        let mut server = self.spawn().map_err(Started::Load)?;
        let hello = ToChild::Hello {
            path: self.path.display().to_string(),
            options: self.options.clone(),
            allow_unsafe: self.isolation.allow_unsafe_path,
            facts: self.facts.clone(),
        };
        send(&mut server, &hello).map_err(|e| Started::Load(format!("its process did not start: {e}")))?;
        match self.answer(&mut server, "load") {
            Ok(FromChild::Loaded { schema }) => {
                let schema = schema.map(|s| {
                    let leak = |t: String| -> &'static str { Box::leak(t.into_boxed_str()) };
                    let specs: Vec<OptionSpec> = s
                        .into_iter()
                        .map(|o| OptionSpec {
                            name: leak(o.name).into(),
                            ty: OptionType(o.ty),
                            choices: leak(o.choices).into(),
                            default: leak(o.default).into(),
                            help: leak(o.help).into(),
                        })
                        .collect();
                    &*Box::leak(specs.into_boxed_slice())
                });
                Ok((server, schema))
            }
            Ok(FromChild::Refused { error, .. }) => Err(Started::Load(error.message)),
            Ok(other) => Err(Started::Load(format!("its process answered {other:?} to Hello"))),
            Err(e) => Err(Started::Load(e.message.to_string())),
        }
    }

    /// Build the instance in a loaded child.
    fn instantiate(&self, server: &mut Server) -> Result<PluginInfo, Started> {
        send(server, &ToChild::New).map_err(|e| Started::Load(format!("its process went away: {e}")))?;
        match self.answer(server, "new") {
            Ok(FromChild::Ready { info }) => {
                let mut info: PluginInfo = info.into();
                info.name = crate::model::text::plugin_text(info.name.as_str(), 200).into();
                info.version = crate::model::text::plugin_text(info.version.as_str(), 200).into();
                Ok(info)
            }
            Ok(FromChild::Refused { error, .. }) => Err(Started::Refused(error.into())),
            Ok(other) => Err(Started::Load(format!("its process answered {other:?} to New"))),
            Err(e) => Err(Started::Load(e.message.to_string())),
        }
    }

    /// A new child, loaded and instantiated (a restart after a failure).
    fn start(&self) -> Result<Server, Started> {
        let (mut server, _) = self.load()?;
        self.instantiate(&mut server)?;
        Ok(server)
    }

    /// The next answer of `server`, within the timeout; a dead or silent child is an error
    /// that says what happened to it.
    fn answer(&self, server: &mut Server, call: &str) -> Result<FromChild, PluginError> {
        let got = match self.isolation.timeout {
            Some(t) => server.answers.recv_timeout(t),
            None => server.answers.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(Ok(message)) => Ok(message),
            Ok(Err(garbage)) => {
                server.kill();
                Err(lost(call, format!("sent {garbage}")))
            }
            Err(RecvTimeoutError::Timeout) => {
                server.kill();
                let secs = self.isolation.timeout.map_or(0, |t| t.as_secs());
                Err(lost(call, format!("did not answer within {secs} s (--plugin-timeout) and was killed")))
            }
            Err(RecvTimeoutError::Disconnected) => {
                server.gone = true;
                let status = server.child.wait().map(describe).unwrap_or_else(|e| format!("ended ({e})"));
                Err(lost(call, status))
            }
        }
    }

    /// Run `f` with a live child (starting one if the last one died); a failure drops it.
    fn with_server<T>(&self, call: &str, f: impl FnOnce(&Self, &mut Server) -> Result<T, PluginError>) -> Result<T, PluginError> {
        let mut slot = self.server.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let server = self.start().map_err(|e| match e {
                Started::Load(why) => lost(call, format!("could not be restarted ({why})")),
                Started::Refused(e) => e,
            })?;
            *slot = Some(server);
        }
        let server = slot.as_mut().expect("just started");
        let result = f(self, server);
        if server.gone || matches!(server.child.try_wait(), Ok(Some(_)) | Err(_)) {
            *slot = None;
        }
        result
    }

    fn with_ops(&self, call: WCall, request: &Request<'_>, restrictions: &Restrictions, ops: &mut ModelOps<'_>) -> Result<(), PluginError> {
        let name = if call == WCall::Construct { "construct" } else { "tear_down" };
        self.with_server(name, |me, server| {
            let message = ToChild::WithOps {
                call,
                request: WRequest::from(request),
                restrictions: WRestrictions::from(restrictions),
                altmap: ops.altmap.as_ref().map(super::wire::altmap_to_wire),
            };
            send(server, &message).map_err(|e| lost(name, e))?;
            loop {
                match me.answer(server, name)? {
                    FromChild::Op(op) => {
                        let result = op.apply(ops).map_err(|e| (&e).into());
                        send(server, &ToChild::OpReply { result }).map_err(|e| lost(name, e))?;
                    }
                    FromChild::Done { result } => return result.map_err(Into::into),
                    other => {
                        server.kill();
                        return Err(lost(name, format!("answered {other:?}")));
                    }
                }
            }
        })
    }
}

/// Why an isolated strategy could not be made: its options failed the caller's check,
/// or loading or the constructor failed.
pub enum IsolatedError<E> {
    Options(E),
    Instance(super::InstanceError),
}

/// How starting a child failed: the plugin did not load, or its constructor refused.
enum Started {
    Load(String),
    Refused(PluginError),
}

fn send(server: &mut Server, message: &ToChild) -> Result<(), String> {
    let mut line = serde_json::to_vec(message).map_err(|e| e.to_string())?;
    line.push(b'\n');
    server.stdin.write_all(&line).and_then(|()| server.stdin.flush()).map_err(|e| format!("its process went away ({e})"))
}

impl StrategyHandle for IsolatedStrategy {
    fn instance_name(&self) -> &str {
        &self.name
    }

    fn plugin_name(&self) -> &str {
        &self.info.name
    }

    fn kinds(&self) -> RequestKinds {
        self.info.kinds
    }

    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        self.with_server("set_up", |me, server| {
            send(server, &ToChild::SetUp { request: WRequest::from(request) }).map_err(|e| lost("set_up", e))?;
            match me.answer(server, "set_up")? {
                FromChild::SetUpDone { result } => result.map(Into::into).map_err(Into::into),
                other => {
                    server.kill();
                    Err(lost("set_up", format!("answered {other:?}")))
                }
            }
        })
    }

    fn construct(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut ModelOps<'_>) -> Result<(), PluginError> {
        self.with_ops(WCall::Construct, request, restrictions, ops)
    }

    fn tear_down(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut ModelOps<'_>) -> Result<(), PluginError> {
        self.with_ops(WCall::TearDown, request, restrictions, ops)
    }
}
