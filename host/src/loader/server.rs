//! The plugin's side of `--isolate`: `host plugin-server`, a child process that loads one
//! plugin and serves its calls over standard input and output, one JSON line each
//! ([`super::wire`]). MemmapOps calls go back to the host, which applies them to its
//! model and answers; so the model never lives here, and whatever the plugin does to
//! this process (exit, abort, a crash, a hang) the host survives it.

use std::io::{BufRead, Read};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult};
use hotplug_core::abi::{MemmapOps, MemmapOps_TO};
use hotplug_core::{Altmap, DevicePageInit, PfnRange, PluginError, StridedRange};

use super::wire::{FromChild, ToChild, WCall, WError, WInfo, WOp, WOption, MAX_LINE};
use super::{Loader, MachineFacts, StrategyInstance};
use crate::model::ops::RequestData;

/// Read one message (a line of at most [`MAX_LINE`] bytes); `None` at the end of input.
pub fn read_message<T: serde::de::DeserializeOwned>(input: &mut impl BufRead) -> Result<Option<T>, String> {
    let mut line = Vec::new();
    input.take(MAX_LINE + 1).read_until(b'\n', &mut line).map_err(|e| e.to_string())?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.len() as u64 > MAX_LINE {
        return Err(format!("a message of more than {MAX_LINE} bytes"));
    }
    serde_json::from_slice(&line).map(Some).map_err(|e| format!("a message that is not the protocol's: {e}"))
}

fn send(message: &FromChild) -> Result<(), String> {
    let line = serde_json::to_string(message).map_err(|e| e.to_string())?;
    crate::output::println(&line).map_err(|e| e.to_string())
}

/// The MemmapOps the plugin sees here: each call a round trip to the host.
struct ProxyOps<'a, R: BufRead> {
    input: &'a mut R,
    altmap: Option<Altmap>,
}

impl<R: BufRead> ProxyOps<'_, R> {
    fn call(&mut self, op: WOp) -> Result<u64, PluginError> {
        let lost = |why: String| PluginError::msg(format!("the host did not answer a MemmapOps call: {why}"));
        send(&FromChild::Op(op)).map_err(lost)?;
        match read_message::<ToChild>(self.input).map_err(lost)? {
            Some(ToChild::OpReply { result }) => result.map_err(PluginError::from),
            other => Err(lost(format!("got {other:?}"))),
        }
    }
}

impl<R: BufRead> MemmapOps for ProxyOps<'_, R> {
    fn mark_vmemmap(&mut self, r: PfnRange) -> RResult<(), PluginError> {
        self.call(WOp::MarkVmemmap { start: r.start, count: r.count }).map(drop).into()
    }

    fn init_device_pages(&mut self, r: PfnRange, i: DevicePageInit) -> RResult<(), PluginError> {
        let op = WOp::InitDevicePages {
            start: r.start,
            count: r.count,
            nid: i.nid,
            pgmap_id: i.pgmap_id,
            compound_order: i.compound_order,
            refcount: i.refcount,
        };
        self.call(op).map(drop).into()
    }

    fn clear_pages(&mut self, r: PfnRange) -> RResult<(), PluginError> {
        self.call(WOp::ClearPages { start: r.start, count: r.count }).map(drop).into()
    }

    fn reserve_pages(&mut self, r: PfnRange) -> RResult<u64, PluginError> {
        self.call(WOp::ReservePages { start: r.start, count: r.count }).into()
    }

    fn release_pages(&mut self, handle: u64) -> RResult<(), PluginError> {
        self.call(WOp::ReleasePages { handle }).map(drop).into()
    }

    fn altmap(&self) -> ROption<Altmap> {
        self.altmap.into()
    }

    fn mark_vmemmap_strided(&mut self, r: StridedRange) -> RResult<(), PluginError> {
        self.call(WOp::MarkVmemmapStrided { runs: [r.start, r.len, r.stride, r.count] }).map(drop).into()
    }

    fn clear_pages_strided(&mut self, r: StridedRange) -> RResult<(), PluginError> {
        self.call(WOp::ClearPagesStrided { runs: [r.start, r.len, r.stride, r.count] }).map(drop).into()
    }
}

/// Serve one plugin until the host closes our standard input. Errors end the process
/// (the host sees it as the plugin's process ending, and says so).
pub fn serve() -> Result<(), String> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let Some(ToChild::Hello { path, options, allow_unsafe, facts }) = read_message::<ToChild>(&mut input)? else {
        return Err("the first message was not Hello".into());
    };
    let refused = |load: bool, message: String| send(&FromChild::Refused { load, error: WError { errno: 0, message } });
    let mut loader = Loader::new(allow_unsafe);
    let lib = match loader.load(std::path::Path::new(&path)) {
        Ok(lib) => lib,
        Err(e) => return refused(true, e.to_string()),
    };
    let schema = lib.options_schema().map(|s| {
        s.iter()
            .map(|o| WOption {
                name: o.name.to_string(),
                ty: o.ty.0,
                choices: o.choices.to_string(),
                default: o.default.to_string(),
                help: o.help.to_string(),
            })
            .collect()
    });
    send(&FromChild::Loaded { schema })?;
    if !matches!(read_message::<ToChild>(&mut input)?, Some(ToChild::New)) {
        return Ok(()); // the host refused the options (or went away)
    }
    let facts: MachineFacts = facts.into();
    let instance = match StrategyInstance::new("isolated", &lib, &options, facts, &[]) {
        Ok(i) => i,
        Err(e) => return refused(false, e.to_string()),
    };
    send(&FromChild::Ready { info: WInfo::from(&instance.info) })?;
    crate::loader::watch::set_context("an isolated call");
    while let Some(message) = read_message::<ToChild>(&mut input)? {
        match message {
            ToChild::SetUp { request } => {
                let data: RequestData = request.into();
                let result = data.with(|r| instance.set_up_raw(r));
                send(&FromChild::SetUpDone { result: result.as_ref().map(Into::into).map_err(Into::into) })?;
            }
            ToChild::WithOps { call, request, restrictions, altmap } => {
                let data: RequestData = request.into();
                let restrictions = restrictions.into();
                let mut proxy = ProxyOps { input: &mut input, altmap: altmap.map(super::wire::altmap_from_wire) };
                let result = data.with(|r| {
                    let ops = MemmapOps_TO::from_ptr(&mut proxy, TD_Opaque);
                    match call {
                        WCall::Construct => instance.construct_raw(r, &restrictions, ops),
                        WCall::TearDown => instance.tear_down_raw(r, &restrictions, ops),
                    }
                });
                send(&FromChild::Done { result: result.map_err(|e| WError::from(&e)) })?;
            }
            ToChild::Hello { .. } | ToChild::New | ToChild::OpReply { .. } => return Err("a message out of turn".into()),
        }
    }
    Ok(())
}
