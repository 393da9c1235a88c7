//! Every shipped config's JSON report, `host plan`'s and a sweep's validate against the schema
//! file users get (docs/report.schema.json); and the schema is strict enough to refuse
//! a report that lost a field or changed a type.

use hotplug_tests::{run_host, workspace_root, Profile};

const P: Profile = Profile::Debug;

fn schema() -> (boon::Schemas, boon::SchemaIndex) {
    let path = workspace_root().join("docs/report.schema.json");
    let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource("report.schema.json", value).unwrap();
    let index = compiler.compile("report.schema.json", &mut schemas).unwrap_or_else(|e| panic!("the schema does not compile: {e}"));
    (schemas, index)
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let r = run_host(P, args);
    assert!(r.code == 0 || r.code == 1, "{args:?}: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn every_shipped_report_the_plan_and_a_sweep_validate_against_the_schema() {
    let (schemas, index) = schema();
    let mut checked = 0;
    for c in hotplug_host::shipped::CONFIGS {
        let v = json_of(&["--config", c.name, "--format", "json"]);
        assert_eq!(v["schema_version"], 2);
        if let Err(e) = schemas.validate(&v, index) {
            panic!("{}: {e:#}", c.name);
        }
        checked += 1;
    }
    assert_eq!(checked, hotplug_host::shipped::CONFIGS.len());
    let plan = json_of(&["plan", "--config", "small-vm-plan.toml", "--format", "json"]);
    schemas.validate(&plan, index).unwrap_or_else(|e| panic!("plan: {e:#}"));
    // A plan with a virtio-mem device's answer.
    let plan = json_of(&["plan", "--config", "virtio-mem.toml", "--target", "4GiB", "--format", "json"]);
    assert_eq!(plan["plan"]["virtio"][0]["device"], "virtio0");
    schemas.validate(&plan, index).unwrap_or_else(|e| panic!("virtio plan: {e:#}"));
    // A sweep with failed and successful runs (the baseline's ENOMEM at 1 GiB).
    let sweep = json_of(&["sweep", "--config", "small-vm.toml", "--vary", "step.1.size=1GiB,8GiB", "--format", "json"]);
    assert_eq!(sweep["kind"], "sweep");
    assert_eq!(sweep["sweep"]["rows"][0]["error"]["code"], "ENOMEM");
    schemas.validate(&sweep, index).unwrap_or_else(|e| panic!("sweep: {e:#}"));
    // A --keep-going sweep with a point that did not run (96 MiB: no power of two): its
    // rows have null metrics and say why; a row that says why and has metrics, or has
    // neither, is refused.
    let mut kept = json_of(&[
        "sweep",
        "--config",
        "small-vm.toml",
        "--vary",
        "machine.memory_block_size=96MiB,128MiB",
        "--keep-going",
        "--format",
        "json",
    ]);
    assert!(kept["sweep"]["rows"][0]["invalid"].is_string());
    schemas.validate(&kept, index).unwrap_or_else(|e| panic!("keep-going sweep: {e:#}"));
    let ran = kept["sweep"]["rows"][2]["metrics"].clone();
    kept["sweep"]["rows"][0]["metrics"] = ran;
    assert!(schemas.validate(&kept, index).is_err(), "an invalid row with metrics must not validate");
    kept["sweep"]["rows"][2]["metrics"] = serde_json::Value::Null;
    kept["sweep"]["rows"][0]["metrics"] = serde_json::Value::Null;
    assert!(schemas.validate(&kept, index).is_err(), "a row that ran with null metrics must not validate");
}

#[test]
fn a_memmap_enomem_carries_its_numbers_as_fields() {
    let v = json_of(&["--config", "small-vm.toml", "--format", "json"]);
    let o = &v["runs"][0]["steps"][0]["outcome"];
    // small-vm.toml's 64 GiB add at 4 GiB with the baseline: 480 sections' memmap fit,
    // the 481st (section 32 + 480 = 512, pfn 512 x 32,768 = 0x1000000) needs 512 pages
    // and finds none above the watermarks on node 0: sparse_add_section's ENOMEM (12).
    assert_eq!((o["result"].as_str(), o["code"].as_str(), o["errno"].as_i64()), (Some("failed"), Some("ENOMEM"), Some(12)));
    assert_eq!(o["check"], "sparse_add_section");
    let m = &o["memmap"];
    assert_eq!((m["section"].as_u64(), m["pfn"].as_u64(), m["section_index"].as_u64()), (Some(512), Some(0x100_0000), Some(481)));
    assert_eq!((m["pages_needed"].as_u64(), m["pages_available"].as_u64(), m["node"].as_u64()), (Some(512), Some(0), Some(0)));
    // memmap-on-memory.toml step 8: a two-block remove of one-block altmaps is refused by
    // try_remove_memory's granularity rule (EINVAL, 22).
    let v = json_of(&["--config", "memmap-on-memory.toml", "--format", "json"]);
    let o = &v["runs"][0]["steps"][7]["outcome"];
    assert_eq!((o["code"].as_str(), o["errno"].as_i64(), o["check"].as_str()), (Some("EINVAL"), Some(22), Some("try_remove_memory")));
}

#[test]
fn the_schema_refuses_a_report_that_changed_shape() {
    let (schemas, index) = schema();
    let good = json_of(&["--config", "small-vm.toml", "--format", "json"]);
    let mut lost = good.clone();
    lost["runs"][0]["steps"][0]["outcome"].as_object_mut().unwrap().remove("errno");
    assert!(schemas.validate(&lost, index).is_err(), "a failure without errno must not validate");
    let mut retyped = good.clone();
    retyped["runs"][0]["state"]["mem_total_kb"] = serde_json::json!("1 GiB");
    assert!(schemas.validate(&retyped, index).is_err());
    let mut old = good;
    old["schema_version"] = serde_json::json!(1);
    assert!(schemas.validate(&old, index).is_err());
}
