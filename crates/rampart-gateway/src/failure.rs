//! Everything that can go wrong with a request on its way through the
//! gateway, who caused it, and the one mapping from a failure to the
//! answer, the outcome and the error metric. Refusals (bans, attacks) are
//! decisions, not failures: they are answered by the request filter.

use http::StatusCode;

use crate::metrics::{Culprit, Outcome};

/// A request the gateway could not carry through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The client's body ended early or ran past its declared length
    /// (or was not all sent within `timeouts.header_read`).
    IncompleteBody,
    /// The request cannot be rebuilt for a backend (a header value the
    /// HTTP library refuses).
    Unforwardable,
    /// No backend is healthy.
    NoHealthyBackend,
    /// Every backend tried could not be reached, or the request to it failed.
    Unreachable,
    /// The backend did not answer in time (`backend_response`, `total`).
    Timeout,
    /// The gateway lost the request between its phases: a bug.
    Internal,
}

impl Failure {
    /// Who caused it.
    pub fn culprit(self) -> Culprit {
        match self {
            Failure::IncompleteBody | Failure::Unforwardable => Culprit::client,
            Failure::NoHealthyBackend | Failure::Unreachable | Failure::Timeout => {
                Culprit::upstream
            }
            Failure::Internal => Culprit::gateway,
        }
    }

    /// The status the client is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Failure::IncompleteBody | Failure::Unforwardable => StatusCode::BAD_REQUEST,
            Failure::NoHealthyBackend => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Unreachable => StatusCode::BAD_GATEWAY,
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// How the request is counted in `rampart_gateway_requests_total`.
    pub fn outcome(self) -> Outcome {
        match self {
            Failure::IncompleteBody => Outcome::aborted,
            Failure::Unforwardable => Outcome::bad_request,
            Failure::NoHealthyBackend => Outcome::unavailable,
            Failure::Unreachable => Outcome::bad_gateway,
            Failure::Timeout => Outcome::timeout,
            Failure::Internal => Outcome::internal,
        }
    }

    /// The text of the answer (the request id is added to it).
    pub fn message(self) -> &'static str {
        match self {
            Failure::IncompleteBody => "request body incomplete or longer than declared",
            Failure::Unforwardable => "request cannot be forwarded",
            Failure::NoHealthyBackend => "no healthy backend",
            Failure::Unreachable => "no backend could be reached",
            Failure::Timeout => "the backend did not answer in time",
            Failure::Internal => "the gateway lost the request",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Failure; 6] = [
        Failure::IncompleteBody,
        Failure::Unforwardable,
        Failure::NoHealthyBackend,
        Failure::Unreachable,
        Failure::Timeout,
        Failure::Internal,
    ];

    #[test]
    fn client_failures_are_4xx_and_the_rest_5xx_each_with_its_own_outcome() {
        for f in ALL {
            let status = f.status();
            match f.culprit() {
                Culprit::client => assert!(status.is_client_error(), "{f:?}"),
                Culprit::upstream | Culprit::gateway => {
                    assert!(status.is_server_error(), "{f:?}");
                }
            }
            assert_ne!(f.outcome(), Outcome::forwarded);
        }
        let outcomes: std::collections::HashSet<_> = ALL.iter().map(|f| f.outcome()).collect();
        assert_eq!(outcomes.len(), ALL.len(), "one outcome per failure");
    }
}
