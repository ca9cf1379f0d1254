//! The HTTP link to the central server: one pooled client, the node's
//! token, bounded waits, errors that say whether to retry.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart_config::FleetConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Longest a call may take (a long poll waits up to 10 s at the server).
const CALL_TIMEOUT: Duration = Duration::from_secs(40);
/// Longest an answer body may be.
const MAX_ANSWER: usize = 64 << 20;

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Could not connect, send or read the answer.
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// The server answered an error.
    #[error("server answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Its body (the first 500 characters).
        body: String,
    },
    /// The answer was not what the API says.
    #[error("unreadable answer from the server: {0}")]
    Answer(String),
}

impl LinkError {
    /// Whether the server refused the items themselves (so sending them
    /// again cannot help): 400, 413 and 422.
    pub fn refused_items(&self) -> bool {
        matches!(
            self,
            LinkError::Status {
                status: 400 | 413 | 422,
                ..
            }
        )
    }
}

/// A configuration that cannot make a link.
#[derive(Debug, thiserror::Error)]
pub enum LinkConfigError {
    /// `fleet.url` or `fleet.token` is missing.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// The URL is not one this build can reach.
    #[error("{0}")]
    Scheme(String),
}

/// The server, as a node reaches it.
pub struct Link {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: String,
}

impl Link {
    /// A link for `config`, which must have `url` (http://) and `token`.
    pub fn new(config: &FleetConfig) -> Result<Self, LinkConfigError> {
        let url = config
            .url
            .as_deref()
            .ok_or(LinkConfigError::Missing("fleet.url"))?;
        rampart_config::check_fleet_url(url).map_err(LinkConfigError::Scheme)?;
        let token = config
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or(LinkConfigError::Missing("fleet.token"))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            client,
            base: url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST path` with `body` as JSON; the answer's body.
    pub async fn post<T: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<Bytes, LinkError> {
        let body = serde_json::to_vec(body).map_err(|e| LinkError::Transport(e.to_string()))?;
        self.call(http::Method::POST, path, Some(body)).await
    }

    /// `GET path`, the answer read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, LinkError> {
        let bytes = self.call(http::Method::GET, path, None).await?;
        serde_json::from_slice(&bytes).map_err(|e| LinkError::Answer(e.to_string()))
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, LinkError> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            );
        if body.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| LinkError::Transport(e.to_string()))?;
        let response = tokio::time::timeout(CALL_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| {
                LinkError::Transport(format!("no answer in {} s", CALL_TIMEOUT.as_secs()))
            })?
            .map_err(|e| LinkError::Transport(e.to_string()))?;
        let status = response.status();
        let limited = http_body_util::Limited::new(response.into_body(), MAX_ANSWER);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| LinkError::Transport(e.to_string()))?
            .to_bytes();
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(LinkError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, token: Option<&str>) -> FleetConfig {
        FleetConfig {
            url: Some(url.to_owned()),
            token: token.map(str::to_owned),
            ..FleetConfig::default()
        }
    }

    #[test]
    fn only_http_urls_with_a_token_make_a_link() {
        assert!(matches!(
            Link::new(&config("https://server", Some("t"))),
            Err(LinkConfigError::Scheme(_))
        ));
        assert!(matches!(
            Link::new(&config("http://server", None)),
            Err(LinkConfigError::Missing("fleet.token"))
        ));
        let link = Link::new(&config("http://server:9700/", Some("t"))).expect("link");
        assert_eq!(link.base(), "http://server:9700");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_transport_error() {
        let link = Link::new(&config("http://127.0.0.1:9", Some("t"))).expect("link");
        let error = link
            .post("/api/v1/events", &[1])
            .await
            .expect_err("refused");
        assert!(matches!(error, LinkError::Transport(_)), "{error}");
        assert!(!error.refused_items());
    }
}
