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
    let SourceInput::File { paths } = &config.sources[0].input else {
        panic!("a file source: {:?}", config.sources[0]);
    };
    assert_eq!(paths[0], Path::new("/var/log/auth.log"));
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
name = "b"
format = "sshd"
type = "journald"
paths = ["/x"]

[[source]]
name = "c"
format = "sshd"
paths = ["/y"]

[[source]]
name = "c"
format = "sshd"
type = "journald"

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

#[test]
fn a_gateway_table_parses() {
    let config = parse(
        r#"
[gateway]
listen = ["0.0.0.0:8080", "[::]:8080"]
mode = "monitor"
trusted_proxies = ["10.0.0.0/8", "192.0.2.1"]
balance = "least_connections"
ban_for = "15m"

[[gateway.backend]]
url = "http://127.0.0.1:3000"

[[gateway.backend]]
url = "http://app.internal"

[gateway.health]
path = "/healthz"
interval = "2s"

[gateway.timeouts]
connect = "1s"
"#,
    )
    .unwrap();
    let g = &config.gateway;
    assert_eq!(g.listen.len(), 2);
    assert_eq!(g.mode, GatewayMode::Monitor);
    assert_eq!(g.balance, BalanceStrategy::LeastConnections);
    assert_eq!(g.ban_for.as_secs(), 900);
    assert_eq!(g.backends.len(), 2);
    assert_eq!(g.health.path, "/healthz");
    assert_eq!(g.health.unhealthy_threshold, 3, "defaults kept");
    assert_eq!(g.timeouts.connect.as_secs(), 1);
    assert_eq!(g.timeouts.total.as_secs(), 60);
    assert_eq!(
        parse_backend_url(&g.backends[1].url).unwrap(),
        "app.internal:80"
    );
}

#[test]
fn every_gateway_problem_is_reported() {
    let err = parse(
        r#"
[gateway]
trusted_proxies = ["10.0.0.0/33"]

[[gateway.backend]]
url = "https://secure.example"

[[gateway.backend]]
url = "http://host/with/path"

[gateway.health]
path = "healthz"

[gateway.timeouts]
idle = "5s"
"#,
    )
    .unwrap_err();
    let text = err.to_string();
    for expected in [
        "gateway.backend[0].url",
        "only http://",
        "gateway.backend[1].url",
        "gateway.trusted_proxies[0]",
        "gateway.health.path",
        "gateway.timeouts.idle",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    let unknown = parse("[gateway]\nlisten_on = []\n").unwrap_err();
    assert!(unknown.to_string().contains("listen_on"), "{unknown}");
}

#[test]
fn every_bad_key_and_value_is_reported_in_file_order_naming_key_and_value() {
    let text = r#"
[agent]
colour = "blue"

[[source]]
name = "ssh"
format = "sshd"
paths = ["/var/log/auth.log"]
pathz = ["typo"]

[[source]]
name = "web"
format = "nginxx"
paths = ["/var/log/nginx/access.log"]

[[source]]
name = "no-format"
paths = ["/var/log/x.log"]

[[source]]
name = "slow"
format = "nginx"
paths = ["/var/log/nginx/access.log"]
poll_interval = "fast"

[policy.ban]
high = "999999999d"

[metrics]
listen = "localhost"
"#;
    let err = parse(text).unwrap_err();
    let got: Vec<(Option<usize>, &str)> =
        err.0.iter().map(|p| (p.line, p.message.as_str())).collect();
    let expect: [(usize, &str); 7] = [
        (3, "agent.colour: unknown field `colour`"),
        (9, "source[0].pathz: unknown field `pathz`"),
        (
            13,
            "source[1].format = \"nginxx\": unknown variant `nginxx`",
        ),
        (16, "source[2]: missing field `format`"),
        (24, "source[3].poll_interval = \"fast\": invalid duration"),
        (
            27,
            "policy.ban.high = \"999999999d\": invalid duration \"999999999d\": longer than 100 years",
        ),
        (
            30,
            "metrics.listen = \"localhost\": invalid socket address syntax (write an IP address",
        ),
    ];
    assert_eq!(got.len(), expect.len(), "{got:#?}");
    for ((line, message), (want_line, want)) in got.iter().zip(expect) {
        assert_eq!(*line, Some(want_line), "{message}");
        assert!(
            message.starts_with(want),
            "{message:?} should start with {want:?}"
        );
    }
}

#[test]
fn validation_still_runs_on_what_parsed_when_some_keys_are_bad() {
    let err = parse("[agent]\ncolour = 1\n[fleet]\nbatch = 0\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("agent.colour"), "{text}");
    assert!(text.contains("fleet.batch must be at least 1"), "{text}");
}

#[test]
fn a_fleet_url_this_build_cannot_reach_is_refused_at_load() {
    let err = parse("[fleet]\nurl = \"https://server:9700\"\ntoken = \"t\"\n").unwrap_err();
    assert!(
        err.to_string().contains("only http:// is supported"),
        "{err}"
    );
    assert!(parse("[fleet]\nurl = \"http://server:9700\"\ntoken = \"t\"\n").is_ok());
}

#[test]
fn a_file_that_is_not_toml_reports_its_syntax_error_with_the_line() {
    let err = parse("[agent]\nname = \"x\"\n[policy\n").unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].line, Some(3));
}

#[test]
fn a_source_is_typed_once_at_load_and_each_type_has_only_its_fields() {
    let config = parse(
        r#"
[[source]]
name = "journal"
format = "sshd"
type = "journald"
journal_matches = ["_SYSTEMD_UNIT=ssh.service"]
"#,
    )
    .unwrap();
    assert_eq!(config.sources[0].kind(), SourceType::Journald);
    assert_eq!(
        config.sources[0].input,
        SourceInput::Journald {
            matches: vec!["_SYSTEMD_UNIT=ssh.service".to_owned()],
            journalctl: "journalctl".into(),
        }
    );
    let err = parse(
        r#"
[[source]]
name = "files"
format = "nginx"
paths = ["/var/log/nginx/access.log"]
journal_matches = ["_SYSTEMD_UNIT=nginx.service"]
max_line_bytes = 10
"#,
    )
    .unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    let message = &err.0[0].message;
    assert!(message.starts_with("source[0]: "), "{message}");
    assert!(message.contains("only apply to type journald"), "{message}");
    assert!(
        message.contains("max_line_bytes must be at least 256"),
        "{message}"
    );
    // What was loaded writes back as the same table.
    let back = toml::to_string(&config).unwrap();
    assert_eq!(parse(&back).unwrap(), config);
}

#[test]
fn an_empty_metrics_address_disables_the_endpoint() {
    assert_eq!(
        parse("[metrics]\nlisten = \"\"\n").unwrap().metrics.listen,
        None
    );
    let on = parse("[metrics]\nlisten = \"127.0.0.1:9999\"\n").unwrap();
    assert_eq!(on.metrics.listen, Some("127.0.0.1:9999".parse().unwrap()));
    assert_eq!(parse(&toml::to_string(&on).unwrap()).unwrap(), on);
    let err = parse("[metrics]\nlisten = \"localhost\"\n").unwrap_err();
    assert!(
        err.to_string().contains("metrics.listen = \"localhost\""),
        "{err}"
    );
}
