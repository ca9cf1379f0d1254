//! nginx and apache error-log lines, alone and through the `apache` format.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rampart_config::LogFormat;
use rampart_logs::parse::errorlog::{parse_apache_error, parse_nginx_error};
use rampart_logs::parse::{ParseOptions, ParserRules, build_parser};

fn rules() -> &'static ParserRules {
    static RULES: OnceLock<ParserRules> = OnceLock::new();
    RULES.get_or_init(|| ParserRules::builtin().expect("built-in rules load"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_nginx_error(text);
        let _ = parse_apache_error(text);
    }
    let opts = ParseOptions {
        source: Arc::from("fuzz"),
        reference: chrono::Utc::now(),
        keep_raw: true,
    };
    if let Ok(mut parser) = build_parser(LogFormat::Apache, rules(), None, opts) {
        let _ = parser.parse(data);
    }
});
