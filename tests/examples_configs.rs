//! Every shipped example config parses in the current experiment model and
//! validates, so `psim run --config examples/NAME.toml` works as documented.

use psim_common::Experiment;

#[test]
fn every_example_config_is_a_valid_experiment() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let e: Experiment =
                toml::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            e.validate()
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 2, "expected the shipped examples, found {n}");
}
