use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_at(text, Path::new("test.toml"), &|name| match name {
        "LOGDIR" => Some("/var/log".to_owned()),
        _ => None,
    })
}

#[test]
fn an_empty_file_is_the_defaults() {
    let config = parse("").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.policy.ban.medium.unwrap().as_secs(), 600);
    assert_eq!(config.firewall.backend, FirewallBackend::Nftables);
}

#[test]
fn a_full_source_parses_with_interpolation() {
    let config = parse(
        r#"
[[source]]
name = "sshd"
format = "sshd"
paths = ["${LOGDIR}/auth.log"]
from_start = true

[policy]
dry_run = true
whitelist = ["10.0.0.0/8", "2001:db8::1"]
ban = { high = "2h", critical = "0s" }
"#,
    )
    .unwrap();
    assert_eq!(config.sources[0].paths[0], Path::new("/var/log/auth.log"));
    assert!(config.sources[0].from_start);
    assert!(config.policy.dry_run);
    assert_eq!(config.policy.ban.high.unwrap().as_secs(), 7200);
    assert_eq!(
        config.policy.ban.medium.unwrap().as_secs(),
        600,
        "a partial table keeps the other levels' defaults"
    );
    assert_eq!(
        config.policy.ban.for_level(rampart_core::Level::Critical),
        None
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let err = parse("[policy]\ndry_run = true\nbantime = \"1h\"\n").unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].line, Some(3));
    assert!(err.0[0].message.contains("bantime"), "{}", err.0[0].message);
}

#[test]
fn every_undefined_variable_is_reported() {
    let err = parse("[store]\nurl = \"${NOPE}\"\n[agent]\nname = \"${ALSO_NOPE}\"\n").unwrap_err();
    let lines: Vec<_> = err.0.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![Some(2), Some(4)]);
    assert!(err.to_string().contains("NOPE is not defined"));
}

#[test]
fn a_literal_dollar_brace_is_escaped() {
    let (text, problems) = interpolate("a = \"$${HOME} $5\"", &|_| None);
    assert!(problems.is_empty());
    assert_eq!(text, "a = \"${HOME} $5\"");
}

#[test]
fn validation_reports_every_problem() {
    let err = parse(
        r#"
[[source]]
name = "a"
format = "json"

[[source]]
name = "a"
format = "sshd"
type = "journald"
paths = ["/x"]

[policy]
whitelist = ["not-an-ip"]
escalation = { factor = 0.5 }

[firewall]
table = "bad table;"
"#,
    )
    .unwrap_err();
    let text = err.to_string();
    for needle in [
        "needs at least one path",
        "needs a [source.json] mapping",
        "name is used by another source",
        "journald takes no paths",
        "not-an-ip",
        "factor",
        "firewall.table",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn json_mapping_kinds_are_checked() {
    let err = parse(
        r#"
[[source]]
name = "app"
format = "json"
paths = ["/x"]
json = { addr = "ip", kind = "exploded" }
"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown event kind"));
}
