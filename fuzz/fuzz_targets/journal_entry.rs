//! `journalctl -o json` lines, then their message through the sshd patterns.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rampart_logs::journal::parse_journal_entry;
use rampart_logs::parse::{ParseOptions, ParserRules, parse_program_message};

fn rules() -> &'static ParserRules {
    static RULES: OnceLock<ParserRules> = OnceLock::new();
    RULES.get_or_init(|| ParserRules::builtin().expect("built-in rules load"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = parse_journal_entry(data) {
        let opts = ParseOptions {
            source: Arc::from("fuzz"),
            reference: entry.time,
            keep_raw: true,
        };
        let _ = parse_program_message(
            rules(),
            &opts,
            entry.time,
            &entry.identifier,
            &entry.message,
        );
    }
});
