//! The JSON schema of scenario files, for editors (`yaml-language-server`) and CI checks.
//!
//! The main function is [`json_schema`]. It is generated with schemars from the same raw
//! types the loader deserializes, so the two cannot drift apart. The schema describes
//! shapes only; values such as regexes, durations and variable references are checked by
//! the loader.

use super::raw::RawScenario;

/// The `$id` of the scenario schema.
pub const SCHEMA_ID: &str = "https://github.com/qus-project/qus/harness/scenario.schema.json";

/// The JSON schema (draft 2020-12) of a scenario file.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(RawScenario);
    schema.insert("$id".to_owned(), SCHEMA_ID.into());
    schema.to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_lists_every_step_kind_and_denies_unknown_keys() {
        let schema = json_schema();
        let text = schema.to_string();
        for kind in super::super::raw::STEP_KINDS {
            assert!(text.contains(&format!("\"{kind}\"")), "{kind}");
        }
        assert_eq!(schema["additionalProperties"], false);
        let required = schema["required"].as_array().unwrap();
        for key in ["apiVersion", "name", "steps"] {
            assert!(required.iter().any(|r| r == key), "{key}");
        }
    }
}
