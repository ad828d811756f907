//! One settings table: every setting has a flag (on every command that
//! runs experiments), a config key and engines; the configuration
//! reference in docs/ is generated from the table, not written by hand.

use psim::cmd::experiment::{command_flags, configuration_reference, flags, FLAGS};
use psim_common::Setting;

#[test]
fn every_setting_has_a_flag_a_config_key_and_engines() {
    for s in Setting::ALL {
        assert!(!flags(s).is_empty(), "{s:?} has no command-line flag");
        assert!(
            s.key().contains('.') || s.key().starts_with("tradeoff"),
            "{s:?}"
        );
        assert!(!s.engines().is_empty(), "{s:?} runs on no engine");
    }
    // Each flag of the table names one setting, once.
    let mut seen = std::collections::BTreeSet::new();
    for (flag, _) in FLAGS {
        assert!(seen.insert(*flag), "{flag} twice in the table");
    }
}

#[test]
fn every_command_that_runs_an_experiment_has_every_flag_of_the_table() {
    for command in ["run", "sweep", "reproduce"] {
        let have = command_flags(command);
        for (flag, setting) in FLAGS {
            let f = have
                .iter()
                .find(|f| f.flag == *flag)
                .unwrap_or_else(|| panic!("`psim {command}` lacks {flag}"));
            assert_eq!(f.setting, Some(*setting));
            assert!(!f.help.trim().is_empty(), "{flag} has no help text");
        }
    }
}

#[test]
fn the_configuration_reference_is_generated_from_the_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
    let now = configuration_reference();
    if std::env::var_os("PSIM_BLESS").is_some() {
        std::fs::write(path, &now).unwrap();
    }
    let written = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        written == now,
        "docs/configuration.md is stale: regenerate it with `PSIM_BLESS=1 cargo test --release --test settings_table`"
    );
    for (flag, _) in FLAGS {
        assert!(
            now.contains(&format!("`{flag}`")),
            "{flag} missing from the reference"
        );
    }
}
