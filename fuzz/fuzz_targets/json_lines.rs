//! JSON lines through a mapping with nested paths and a kind map.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rampart_config::JsonMapping;
use rampart_logs::parse::ParseOptions;
use rampart_logs::parse::json::JsonParser;

fuzz_target!(|data: &[u8]| {
    let mapping = JsonMapping {
        time: Some("ts".to_owned()),
        addr: "client.ip".to_owned(),
        kind: None,
        kind_field: Some("event.type".to_owned()),
        kind_map: BTreeMap::from([("login_failed".to_owned(), "auth_failure".to_owned())]),
        fields: BTreeMap::from([
            ("user".to_owned(), "user.name".to_owned()),
            ("n".to_owned(), "a.0.b".to_owned()),
        ]),
    };
    let opts = ParseOptions {
        source: Arc::from("fuzz"),
        reference: chrono::Utc::now(),
        keep_raw: true,
    };
    if let Ok(parser) = JsonParser::new(&mapping, opts) {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = parser.parse_line(text);
        }
    }
});
