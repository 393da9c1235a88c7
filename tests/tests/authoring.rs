//! docs/writing-a-plugin.md is compiled: each Rust block that exports a plugin is built
//! out of tree as its own `src/lib.rs` and must pass the conformance suite; the blocks that
//! quote the scaffold must be the scaffold's files (which tests/tests/scaffold.rs builds
//! and runs); each TOML block must parse.

use hotplug_tests::{host_exe, out_of_tree, workspace_root, Profile::Debug as P};

/// The fenced blocks of `lang` in a Markdown text, in order.
fn blocks(markdown: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    markdown.split(&fence).skip(1).map(|rest| rest.split("```").next().unwrap_or_default().to_string()).collect()
}

fn guide() -> String {
    std::fs::read_to_string(workspace_root().join("docs/writing-a-plugin.md")).unwrap()
}

#[test]
fn the_guide_quotes_the_scaffold_as_it_is() {
    let rust = blocks(&guide(), "rust");
    assert_eq!(rust[0], hotplug_host::new_plugin::TEMPLATE_LIB_RS, "the guide's first block is the generated src/lib.rs");
    assert_eq!(rust[1], hotplug_host::new_plugin::TEMPLATE_CONFORMANCE_RS, "the guide's second block is the generated test");
}

#[test]
fn every_toml_block_parses() {
    let toml_blocks = blocks(&guide(), "toml");
    assert!(!toml_blocks.is_empty());
    for b in toml_blocks {
        b.parse::<toml::Table>().unwrap_or_else(|e| panic!("{e}\n{b}"));
    }
}

#[test]
fn every_plugin_in_the_guide_builds_out_of_tree_and_passes_conformance() {
    let plugins: Vec<String> = blocks(&guide(), "rust").into_iter().filter(|b| b.contains("export_plugin!(")).collect();
    // The generated plugin, the device strategy, the node-facts strategy.
    assert_eq!(plugins.len(), 3);
    let dir = out_of_tree::crate_dir("guide");
    let names: Vec<String> = (0..plugins.len()).map(|i| format!("guide-example-{i}")).collect();
    let members: Vec<&str> = names.iter().map(String::as_str).collect();
    std::fs::write(dir.join("Cargo.toml"), out_of_tree::workspace_root_manifest(&members)).unwrap();
    let core = workspace_root().join("core");
    for (name, code) in names.iter().zip(&plugins) {
        let krate = dir.join(name);
        std::fs::create_dir_all(krate.join("src")).unwrap();
        std::fs::write(krate.join("src/lib.rs"), code).unwrap();
        let manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
             [features]\ndefault = [\"export\"]\nexport = []\n\n[dependencies]\nhotplug-core = {{ path = {:?} }}\n\
             serde = {{ version = \"1\", features = [\"derive\"] }}\nlog = \"0.4\"\n",
            core.display().to_string()
        );
        std::fs::write(krate.join("Cargo.toml"), manifest).unwrap();
    }
    for name in &names {
        let lib = out_of_tree::build(&dir, name);
        let run: hotplug_tests::Run =
            std::process::Command::new(host_exe(P)).arg("conformance").arg(&lib).env_remove("RUST_LOG").output().unwrap().into();
        assert_eq!(run.code, 0, "{name} from docs/writing-a-plugin.md fails conformance:\n{}{}", run.stdout, run.stderr);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
