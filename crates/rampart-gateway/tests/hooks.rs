//! The gateway's hooks: a hook added beside the gateway's own detection
//! sees every phase, in order, and can answer, pick the backend, change
//! the answer and replace a failure's page. Real backends and gateway on
//! loopback.

mod support;

use std::sync::{Arc, Mutex};

use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use rampart_gateway::context::{Body, RequestCtx};
use rampart_gateway::failure::Failure;
use rampart_gateway::hooks::{Hooks, Stop};
use rampart_gateway::metrics::Outcome;
use support::*;

/// Refuses `/private`, sends `/b/…` to the second backend, tags answers,
/// replaces the 502 page, and records what it logged.
#[derive(Default)]
struct Site {
    filtered: Mutex<Vec<String>>,
    logged: Mutex<Vec<(String, u16, Outcome)>>,
}

fn page(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(bytes::Bytes::from(text))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r
}

#[async_trait::async_trait]
impl Hooks for Site {
    fn request_filter(&self, req: &Request<Body>, ctx: &mut RequestCtx) -> Result<(), Stop> {
        self.filtered
            .lock()
            .unwrap()
            .push(req.uri().path().to_owned());
        if req.uri().path() == "/private" {
            ctx.blocked = true;
            let answer = page(StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "not here");
            return Err(Stop::Answer(Box::new(answer)));
        }
        Ok(())
    }

    fn upstream_peer(&self, ctx: &RequestCtx, _tried: &[usize]) -> Option<usize> {
        ctx_path(ctx).starts_with("/b/").then_some(1)
    }

    fn response_filter(&self, response: &mut Response<Body>, _ctx: &RequestCtx) {
        response
            .headers_mut()
            .insert("x-site", HeaderValue::from_static("hooked"));
    }

    fn logging(&self, ctx: &RequestCtx, status: u16) {
        self.logged
            .lock()
            .unwrap()
            .push((ctx_path(ctx), status, ctx.outcome));
    }

    fn failure(&self, failure: Failure, _ctx: &RequestCtx) -> Option<Response<Body>> {
        (failure == Failure::Unreachable).then(|| page(StatusCode::BAD_GATEWAY, "our own 502 page"))
    }
}

fn ctx_path(ctx: &RequestCtx) -> String {
    ctx.path().to_owned()
}

#[tokio::test]
async fn a_hook_sees_every_phase_after_the_gateways_own_detection() {
    let a = backend("a").await;
    let b = backend("b").await;
    let site = Arc::new(Site::default());
    let hooks: Vec<Arc<dyn Hooks>> = vec![Arc::clone(&site) as Arc<dyn Hooks>];
    let gw = gateway_with_hooks(config(&[&a, &b]), hooks).await;
    let c = client();

    // Refused by the hook: no backend sees it.
    let private = get(&c, &gw.url("/private")).await;
    assert_eq!(private.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert_eq!(
        a.seen.load(std::sync::atomic::Ordering::SeqCst)
            + b.seen.load(std::sync::atomic::Ordering::SeqCst),
        0
    );

    // Pinned to the second backend, every time; the answer is tagged.
    for _ in 0..4 {
        let r = get(&c, &gw.url("/b/page")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, "b");
        assert_eq!(r.header("x-site"), "hooked");
    }

    // An attack is refused by the gateway's own detection first: the hook's
    // request filter never sees it.
    let attack = get(
        &c,
        &gw.url("/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--"),
    )
    .await;
    assert_eq!(attack.status, StatusCode::FORBIDDEN);
    assert!(!site.filtered.lock().unwrap().iter().any(|p| p == "/search"));

    let logged = site.logged.lock().unwrap().clone();
    assert!(
        logged.contains(&("/private".to_owned(), 451, Outcome::refused)),
        "{logged:?}"
    );
    assert!(
        logged.contains(&("/search".to_owned(), 403, Outcome::attack)),
        "{logged:?}"
    );
    assert_eq!(
        logged
            .iter()
            .filter(|(p, s, _)| p == "/b/page" && *s == 200)
            .count(),
        4
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_hook_replaces_a_failure_page_and_the_failure_is_still_counted() {
    let a = backend("a").await;
    let site = Arc::new(Site::default());
    let hooks: Vec<Arc<dyn Hooks>> = vec![Arc::clone(&site) as Arc<dyn Hooks>];
    let mut cfg = config(&[&a]);
    cfg.health.enabled = false;
    let gw = gateway_with_hooks(cfg, hooks).await;
    a.stop().await;
    let c = client();
    let r = get(&c, &gw.url("/anything")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.body, "our own 502 page");
    let metrics = get(&c, &gw.admin_url("/metrics")).await.body;
    assert!(
        metrics.contains("rampart_gateway_errors_total{culprit=\"upstream\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rampart_gateway_requests_total{outcome=\"bad_gateway\"} 1"),
        "{metrics}"
    );
    gw.stop().await;
}
