//! Request smuggling through the real gateway: ambiguous framing gets 400
//! and never reaches a backend; the request before it on the same
//! connection is served.

mod support;

use std::sync::atomic::Ordering;

use support::*;

const ATTEMPTS: [(&str, &str); 5] = [
    (
        "cl-then-te",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    ),
    (
        "te-then-cl",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n",
    ),
    (
        "differing-lengths",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ),
    (
        "te-not-chunked",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    ),
    (
        "obs-fold",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\nabc",
    ),
];

#[tokio::test]
async fn ambiguous_framing_is_400_and_never_forwarded() {
    let b = backend("a").await;
    let gw = gateway(config(&[&b])).await;
    for (name, attempt) in ATTEMPTS {
        let answer = raw(gw.addr, attempt.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{name}: expected 400, got {answer:?}"
        );
    }
    assert_eq!(
        b.seen.load(Ordering::SeqCst),
        0,
        "nothing reached the backend"
    );

    // A good request, then a smuggling attempt hiding a second request, on
    // one connection: the first is served, the rest refused.
    let pipelined = format!(
        "GET /first HTTP/1.1\r\nHost: x\r\n\r\n{}",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    let answer = raw(gw.addr, pipelined.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains("HTTP/1.1 400"), "{answer:?}");
    let paths = b.paths.lock().expect("paths").clone();
    let served: Vec<&String> = paths.iter().filter(|p| *p != "/health").collect();
    assert_eq!(served, ["/first"]);

    let metrics = get(&client(), &gw.admin_url("/metrics")).await.body;
    assert!(
        metrics.contains(
            "rampart_gateway_framing_rejected_total{reason=\"conflicting_length_and_chunked\"}"
        ),
        "{metrics}"
    );
    gw.stop().await;
}
