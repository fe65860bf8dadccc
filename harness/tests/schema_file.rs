//! The committed `harness/scenario.schema.json` (what scenario files point
//! editors at with `# yaml-language-server: $schema=`) is exactly what
//! `qus-harness schema` prints. Regenerate it with
//! `qus-harness schema > harness/scenario.schema.json`.

#[test]
fn committed_schema_matches_the_model() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenario.schema.json");
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("the schema file is committed"),
    )
    .expect("the committed schema is JSON");
    assert_eq!(
        committed,
        qus_harness::scenario::json_schema(),
        "{} is stale: run `qus-harness schema > harness/scenario.schema.json`",
        path.display()
    );
}

#[test]
fn every_scenario_points_at_the_schema() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for entry in std::fs::read_dir(&dir).expect("scenarios/ exists") {
        let path = entry.expect("a directory entry").path();
        // Scenario files only: `scenarios/workloads/` holds what the
        // workload scenarios run, not scenarios.
        let is_scenario = path.is_file()
            && path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml");
        if !is_scenario {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a scenario file");
        assert!(
            text.starts_with("# yaml-language-server: $schema=../harness/scenario.schema.json\n"),
            "{} does not point at the schema",
            path.display()
        );
    }
}
