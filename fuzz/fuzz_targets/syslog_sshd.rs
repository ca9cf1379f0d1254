//! The `sshd` format: syslog envelope (RFC 3164, ISO 8601, RFC 5424) and the
//! built-in sshd patterns; also the bare envelope parser.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rampart_config::LogFormat;
use rampart_logs::parse::{ParseOptions, ParserRules, build_parser, syslog::parse_syslog};

fn rules() -> &'static ParserRules {
    static RULES: OnceLock<ParserRules> = OnceLock::new();
    RULES.get_or_init(|| ParserRules::builtin().expect("built-in rules load"))
}

fuzz_target!(|data: &[u8]| {
    let reference = chrono::DateTime::from_timestamp(1_795_262_400, 0).unwrap_or_default();
    let opts = ParseOptions {
        source: Arc::from("fuzz"),
        reference,
        keep_raw: true,
    };
    if let Ok(mut parser) = build_parser(LogFormat::Sshd, rules(), None, opts) {
        let _ = parser.parse(data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_syslog(text, reference);
    }
});
