//! A `[[strategy]]`'s options checked against what its plugin declares
//! (`Strategy::OPTIONS`), before any instance is built, so a typo fails the config at
//! its line instead of deep inside a plugin constructor.

use hotplug_core::{OptionSpec, OptionType};

/// Which part of an `options` entry is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    Key,
    Value,
}

/// The first entry the schema refuses: its position among the entries given, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionProblem {
    pub index: usize,
    pub at: Where,
    pub message: String,
}

/// Check `given` (key, value) entries against `schema`: every key declared, every value of
/// the declared type (options of a type this host does not know are not type-checked).
pub fn check<'a>(
    plugin: &str,
    schema: &[OptionSpec],
    given: impl IntoIterator<Item = (&'a str, &'a toml::Value)>,
) -> Result<(), OptionProblem> {
    for (index, (key, value)) in given.into_iter().enumerate() {
        let Some(spec) = schema.iter().find(|s| s.name.as_str() == key) else {
            return Err(OptionProblem {
                index,
                at: Where::Key,
                message: format!("plugin {plugin} has no option \"{key}\"; {}", takes(schema)),
            });
        };
        if let Some(expected) = type_mismatch(spec, value) {
            return Err(OptionProblem {
                index,
                at: Where::Value,
                message: format!("option \"{key}\" of plugin {plugin} takes {expected}, not {}", shown(value)),
            });
        }
    }
    Ok(())
}

/// "it takes: a, b" or "it takes no options".
pub fn takes(schema: &[OptionSpec]) -> String {
    if schema.is_empty() {
        "it takes no options".to_string()
    } else {
        let names: Vec<&str> = schema.iter().map(|s| s.name.as_str()).collect();
        format!("it takes: {}", names.join(", "))
    }
}

/// What `spec` wants, when `value` is not it.
fn type_mismatch(spec: &OptionSpec, value: &toml::Value) -> Option<String> {
    use toml::Value as V;
    let ok = match (spec.ty, value) {
        (OptionType::BOOL, V::Boolean(_)) | (OptionType::INTEGER, V::Integer(_)) | (OptionType::STRING, V::String(_)) => true,
        (OptionType::FLOAT, V::Float(_) | V::Integer(_)) => true,
        (OptionType::CHOICE, V::String(s)) => spec.choice_list().any(|c| c == s),
        (OptionType::INTEGER_LIST, V::Array(items)) => items.iter().all(|i| matches!(i, V::Integer(_))),
        (OptionType::SIZE, V::Integer(n)) => *n >= 0,
        (OptionType::SIZE, V::String(s)) => crate::config::parse_size(s).is_ok(),
        (
            OptionType::BOOL
            | OptionType::INTEGER
            | OptionType::FLOAT
            | OptionType::STRING
            | OptionType::CHOICE
            | OptionType::INTEGER_LIST
            | OptionType::SIZE,
            _,
        ) => false,
        _ => true,
    };
    if ok {
        return None;
    }
    Some(match spec.ty {
        OptionType::CHOICE => {
            let choices: Vec<String> = spec.choice_list().map(|c| format!("\"{c}\"")).collect();
            format!("one of {}", choices.join(", "))
        }
        OptionType::BOOL => "true or false".to_string(),
        OptionType::INTEGER_LIST => "an array of integers".to_string(),
        OptionType::SIZE => "a size (bytes, or a string such as \"2MiB\")".to_string(),
        t => format!("a{} {}", if t == OptionType::INTEGER { "n" } else { "" }, t.name()),
    })
}

/// A value as the user wrote it, cut short.
fn shown(value: &toml::Value) -> String {
    let text = value.to_string();
    let cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &[OptionSpec] = &[
        OptionSpec::choice("mode", "strict|force", "\"strict\"", "eligibility rule"),
        OptionSpec::new("per_block", OptionType::BOOL, "true", "6.8+ rule"),
        OptionSpec::new("memmap_nodes", OptionType::INTEGER_LIST, "[]", "who pays"),
        OptionSpec::new("ratio", OptionType::FLOAT, "1.0", "a float"),
        OptionSpec::new("future", OptionType(77), "", "a type this host does not know"),
        OptionSpec::new("align", OptionType::SIZE, "\"2MiB\"", "a size"),
    ];

    fn entries(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn declared_keys_of_the_right_type_pass() {
        let t = entries("mode = \"force\"\nper_block = false\nmemmap_nodes = [1, 0]\nratio = 2\nfuture = { any = 1 }\nalign = \"1GiB\"\n");
        assert_eq!(check("mom", SCHEMA, t.iter().map(|(k, v)| (k.as_str(), v))), Ok(()));
    }

    #[test]
    fn an_undeclared_key_names_the_keys_it_takes() {
        let t = entries("mod = \"force\"\n");
        let e = check("mom", SCHEMA, t.iter().map(|(k, v)| (k.as_str(), v))).unwrap_err();
        assert_eq!((e.index, e.at), (0, Where::Key));
        assert_eq!(e.message, "plugin mom has no option \"mod\"; it takes: mode, per_block, memmap_nodes, ratio, future, align");
        let e = check("x", &[], t.iter().map(|(k, v)| (k.as_str(), v))).unwrap_err();
        assert!(e.message.ends_with("it takes no options"), "{}", e.message);
    }

    #[test]
    fn wrong_types_name_what_is_wanted() {
        let cases = [
            ("mode = \"fast\"", "option \"mode\" of plugin p takes one of \"strict\", \"force\", not \"fast\""),
            ("per_block = 1", "option \"per_block\" of plugin p takes true or false, not 1"),
            ("memmap_nodes = [1, \"x\"]", "option \"memmap_nodes\" of plugin p takes an array of integers, not [1, \"x\"]"),
            ("ratio = \"1\"", "option \"ratio\" of plugin p takes a float, not \"1\""),
            (
                "align = \"2 furlongs\"",
                "option \"align\" of plugin p takes a size (bytes, or a string such as \"2MiB\"), not \"2 furlongs\"",
            ),
            ("align = -1", "option \"align\" of plugin p takes a size (bytes, or a string such as \"2MiB\"), not -1"),
        ];
        for (text, message) in cases {
            let t = entries(text);
            let e = check("p", SCHEMA, t.iter().map(|(k, v)| (k.as_str(), v))).unwrap_err();
            assert_eq!((e.at, e.message.as_str()), (Where::Value, message), "{text}");
        }
    }
}
