//! What a loaded config needs from the machine, and settings that are
//! allowed but probably not meant: the checks `rampart config check` adds
//! to parsing and validation.
//!
//! Errors are things the running role would fail on (a TLS file that
//! cannot be read). Warnings are accepted settings that weaken protection
//! (a whitelist covering everything, a token readable by every user).

use std::net::IpAddr;
use std::path::Path;

use crate::{Config, FleetConfig, TlsConfig};

/// How serious a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The role would fail, or refuse to start, with this.
    Error,
    /// Accepted, but probably not what was meant.
    Warning,
}

/// One finding of [`Config::audit`], naming the key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, with the key and value.
    pub message: String,
}

impl Notice {
    fn error(message: String) -> Self {
        Self {
            severity: Severity::Error,
            message,
        }
    }

    fn warning(message: String) -> Self {
        Self {
            severity: Severity::Warning,
            message,
        }
    }
}

/// Prefixes at least this wide (IPv4 /8, IPv6 /16, or wider) are worth a
/// word in a whitelist or a trusted-proxy list.
const WIDE_V4: u8 = 8;
const WIDE_V6: u8 = 16;

impl Config {
    /// Checks against the machine and for risky settings. `file` is the
    /// config file itself (its permissions matter when it holds secrets);
    /// `None` for a config that did not come from a file.
    pub fn audit(&self, file: Option<&Path>) -> Vec<Notice> {
        let mut out = Vec::new();
        for (key, tls) in [
            ("gateway.tls", &self.gateway.tls),
            ("server.tls", &self.server.tls),
        ] {
            if let Some(tls) = tls {
                audit_tls(key, tls, &mut out);
            }
        }
        if let Some(dir) = &self.rules.dir
            && !dir.is_dir()
        {
            out.push(Notice::error(format!(
                "rules.dir = {:?}: not a directory",
                dir.display().to_string()
            )));
        }
        for entry in &self.policy.whitelist {
            if let Ok(net) = rampart_core::parse_net(entry)
                && is_wide(&net)
            {
                out.push(Notice::warning(format!(
                    "policy.whitelist: {entry:?} covers {}: none of them will ever be \
                     banned",
                    span_of(&net)
                )));
            }
        }
        for entry in &self.gateway.trusted_proxies {
            if let Ok(net) = rampart_core::parse_net(entry)
                && is_wide(&net)
            {
                out.push(Notice::warning(format!(
                    "gateway.trusted_proxies: {entry:?} trusts {}: any of them can \
                     choose the client address it is judged by (X-Forwarded-For)",
                    span_of(&net)
                )));
            }
        }
        audit_fleet(&self.fleet, &mut out);
        if self.server.tls.is_none() && !self.server.listen.ip().is_loopback() {
            out.push(Notice::warning(format!(
                "server.listen = \"{}\": reachable from other hosts without server.tls, so \
                 passwords and tokens cross the network unencrypted",
                self.server.listen
            )));
        }
        if let Some(file) = file {
            audit_secrets(self, file, &mut out);
        }
        out
    }
}

fn audit_tls(key: &str, tls: &TlsConfig, out: &mut Vec<Notice>) {
    for (name, path) in [("cert", &tls.cert), ("key", &tls.key)] {
        if let Err(e) = std::fs::File::open(path) {
            out.push(Notice::error(format!(
                "{key}.{name} = {:?}: cannot read: {e}",
                path.display().to_string()
            )));
        }
    }
    if readable_by_others(&tls.key) {
        out.push(Notice::warning(format!(
            "{key}.key = {:?}: the private key is readable by every user (chmod 600)",
            tls.key.display().to_string()
        )));
    }
}

fn audit_fleet(fleet: &FleetConfig, out: &mut Vec<Notice>) {
    if let Some(spool) = fleet.spool {
        out.push(Notice::warning(format!(
            "fleet.spool = {spool}: no longer used (what is not pushed yet waits in the node's \
             own store); remove it"
        )));
    }
    if let Some(url) = &fleet.url
        && url.starts_with("http://")
        && let Some(host) = url_host(url)
        && !is_loopback_host(host)
    {
        out.push(Notice::warning(format!(
            "fleet.url = {url:?}: the token crosses the network unencrypted; keep the server on a \
             private network or behind a TLS-terminating proxy on this host"
        )));
    }
}

/// Secrets the config file holds in clear (not through `${VAR}`).
fn audit_secrets(config: &Config, file: &Path, out: &mut Vec<Notice>) {
    if !readable_by_others(file) {
        return;
    }
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let mut held = Vec::new();
    if let Some(token) = config.fleet.token.as_deref().filter(|t| !t.is_empty())
        && text.contains(token)
    {
        held.push("fleet.token");
    }
    if let Some(password) = url_password(&config.store.url)
        && text.contains(password)
    {
        held.push("the password in store.url");
    }
    if !held.is_empty() {
        out.push(Notice::warning(format!(
            "this file is readable by every user and holds {} (chmod 600, or write ${{VAR}} and \
             set it in the environment)",
            held.join(" and ")
        )));
    }
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

#[cfg(not(unix))]
fn readable_by_others(_: &Path) -> bool {
    false
}

fn is_wide(net: &ipnet::IpNet) -> bool {
    match net {
        ipnet::IpNet::V4(n) => n.prefix_len() <= WIDE_V4,
        ipnet::IpNet::V6(n) => n.prefix_len() <= WIDE_V6,
    }
}

/// "every IPv4 address" or "2^24 addresses".
fn span_of(net: &ipnet::IpNet) -> String {
    let free = u32::from(net.max_prefix_len() - net.prefix_len());
    match (net, net.prefix_len()) {
        (ipnet::IpNet::V4(_), 0) => "every IPv4 address".to_owned(),
        (ipnet::IpNet::V6(_), 0) => "every IPv6 address".to_owned(),
        _ => format!("2^{free} addresses"),
    }
}

/// The host of an `http://host:port/…` URL (brackets kept off IPv6).
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The password of `scheme://user:password@host/…`.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split(['/', '?', '#']).next()?.rsplit_once('@')?.0;
    userinfo
        .split_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::from_str_at(text, Path::new("t.toml"), &|_| None).expect("config")
    }

    fn messages(notices: &[Notice], severity: Severity) -> Vec<String> {
        notices
            .iter()
            .filter(|n| n.severity == severity)
            .map(|n| n.message.clone())
            .collect()
    }

    #[test]
    fn missing_tls_files_are_errors_naming_key_and_value() {
        let c = config(
            "[gateway]\nlisten = [\"127.0.0.1:8080\"]\n[gateway.tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n",
        );
        let errors = messages(&c.audit(None), Severity::Error);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("gateway.tls.cert = \"/nonexistent/c.pem\": cannot read"));
        assert!(errors[1].starts_with("gateway.tls.key = \"/nonexistent/k.pem\""));
    }

    #[test]
    fn a_whitelist_or_trusted_proxy_covering_everything_is_a_warning() {
        let c = config(
            "[policy]\nwhitelist = [\"0.0.0.0/0\", \"10.0.0.0/8\", \"192.168.0.0/16\", \"::/0\"]\n\
             [gateway]\ntrusted_proxies = [\"0.0.0.0/0\"]\n",
        );
        let warnings = messages(&c.audit(None), Severity::Warning);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("\"0.0.0.0/0\" covers every IPv4"))
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("\"10.0.0.0/8\" covers 2^24"))
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("\"::/0\" covers every IPv6"))
        );
        assert!(!warnings.iter().any(|w| w.contains("192.168.0.0/16")));
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("gateway.trusted_proxies"))
        );
    }

    #[test]
    fn spool_and_a_cleartext_token_to_another_host_are_warnings() {
        let c = config("[fleet]\nurl = \"http://10.0.0.5:9700\"\ntoken = \"t\"\nspool = 5000\n");
        let warnings = messages(&c.audit(None), Severity::Warning);
        assert!(warnings.iter().any(|w| w.starts_with("fleet.spool = 5000")));
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("fleet.url = \"http://10.0.0.5:9700\""))
        );
        let local = config("[fleet]\nurl = \"http://[::1]:9700\"\ntoken = \"t\"\n");
        assert!(local.audit(None).is_empty(), "{:?}", local.audit(None));
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_file_holding_a_token_is_a_warning_and_600_is_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rampart.toml");
        let text = "[fleet]\nurl = \"http://127.0.0.1:9700\"\ntoken = \"s3cr3t-token\"\n\
                    [store]\nurl = \"postgres://rampart:pw9@db/rampart\"\n";
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = Config::load(&path).unwrap();
        let warnings = messages(&c.audit(Some(&path)), Severity::Warning);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("fleet.token and the password in store.url"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(c.audit(Some(&path)).is_empty());
    }

    #[test]
    fn a_token_from_the_environment_is_not_held_by_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rampart.toml");
        std::fs::write(
            &path,
            "[fleet]\nurl = \"http://127.0.0.1:9700\"\ntoken = \"${T}\"\n",
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let c = Config::from_str_at(&text, &path, &|_| Some("from-env".to_owned())).unwrap();
        assert!(c.audit(Some(&path)).is_empty());
    }

    #[test]
    fn a_server_on_a_public_address_without_tls_is_a_warning() {
        let c = config("[server]\nlisten = \"0.0.0.0:9700\"\n");
        let warnings = messages(&c.audit(None), Severity::Warning);
        assert!(warnings[0].starts_with("server.listen = \"0.0.0.0:9700\""));
    }

    #[test]
    fn url_parts() {
        assert_eq!(url_host("http://user:pw@[::1]:9700/x"), Some("::1"));
        assert_eq!(url_host("http://Server.example:80"), Some("Server.example"));
        assert_eq!(url_password("postgres://u:p@h/db"), Some("p"));
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(url_password("sqlite:///var/lib/x.db"), None);
    }
}
