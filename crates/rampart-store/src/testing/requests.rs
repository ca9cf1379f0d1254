//! The request log, its statistics and queries.

use std::sync::Arc;

use chrono::Duration;

use super::*;
use crate::{
    DecisionStore, FindingStore, Prediction, RequestFilter, RequestLog, RequestRecord, RequestStats,
};

/// Request-log records come back whole, newest first, filtered by client;
/// a batch larger than one statement's worth is stored completely.
pub async fn request_log_round_trip_and_filter<S: RequestLog + ?Sized + 'static>(store: Arc<S>) {
    let record = |i: u32, client: &str| RequestRecord {
        time: t(i64::from(i)),
        gateway: "gw-1".into(),
        request_id: format!("req-{i}"),
        client: client.parse().expect("address"),
        method: if i.is_multiple_of(2) { "GET" } else { "POST" }.into(),
        path: format!("/p/{i}"),
        user_agent: (i.is_multiple_of(3)).then(|| "curl/8".to_owned()),
        status: if i.is_multiple_of(5) { 429 } else { 200 },
        request_bytes: u64::from(i) * 10,
        response_bytes: u64::MAX - u64::from(i),
        latency_ms: f64::from(i) / 4.0,
        score: f64::from(i % 10) / 10.0,
        prediction: if i.is_multiple_of(5) {
            Prediction::Ddos
        } else {
            Prediction::Normal
        },
        blocked: i.is_multiple_of(5),
        reason: (i.is_multiple_of(5)).then(|| "flood".to_owned()),
        backend: (!i.is_multiple_of(5)).then(|| "127.0.0.1:3000".to_owned()),
    };
    let batch: Vec<RequestRecord> = (0..2500)
        .map(|i| {
            record(
                i,
                if i % 2 == 0 {
                    "192.0.2.1"
                } else {
                    "2001:db8::1"
                },
            )
        })
        .collect();
    store
        .insert_requests(&batch)
        .await
        .expect("insert_requests");
    store.insert_requests(&[]).await.expect("empty batch");

    let all = store.recent_requests(None, 10_000).await.expect("recent");
    assert_eq!(all.len(), batch.len());
    assert_eq!(all[0], batch[2499], "newest first, every field kept");
    assert_eq!(all[2499], batch[0]);

    let v6 = store
        .recent_requests(Some("2001:db8::1".parse().expect("address")), 3)
        .await
        .expect("recent by client");
    assert_eq!(v6.len(), 3);
    assert!(v6.iter().all(|r| r.client.is_ipv6()));
    assert_eq!(v6[0].request_id, "req-2499");
}

/// Statistics are exact to the millisecond (a window starting inside a
/// minute counts that minute's records from the window's start), per hour
/// over the hours the window touches, the same whether a batch is written
/// at once or in parts; top lists rank non-NORMAL requests with ties in byte
/// order, for a window holding every stored hour, some, or few.
pub async fn request_stats_over_rollups<
    S: DecisionStore + FindingStore + RequestLog + ?Sized + 'static,
>(
    store: Arc<S>,
) {
    use Prediction::{Attack, Blocked, Ddos, Normal};
    let store = &*store;
    let empty = stats(store, hour0_plus(0, 0), 10).await;
    assert_eq!(empty, RequestStats::default());

    let records = stats_records();
    // Two batches sharing minutes and hours: the rollups add up.
    store.insert_requests(&records[..5]).await.expect("insert");
    store.insert_requests(&records[5..]).await.expect("insert");

    store
        .insert_finding(
            &finding("192.0.2.2/32", "ssh", hour0_plus(10, 0)),
            "dry run",
        )
        .await
        .expect("finding");
    store
        .insert_finding(
            &finding("192.0.2.2/32", "ssh", hour0_plus(20, 0)),
            "dry run",
        )
        .await
        .expect("finding");
    for minute in [30, 31, 32] {
        store
            .insert_finding(
                &finding("192.0.2.3/32", "http-probe", hour0_plus(minute, 0)),
                "whitelisted",
            )
            .await
            .expect("finding");
    }
    let mut decision = ban("192.0.2.2/32", hour0_plus(40, 0));
    decision.findings = vec![finding("192.0.2.2/32", "ssh", hour0_plus(40, 0))];
    store.insert_decision(&decision).await.expect("decision");

    // From the middle of minute 10: r3 (at the very start) to r10.
    let s = stats(store, hour0_plus(10, 30), 2).await;
    assert_eq!(s.total, 8);
    assert_eq!(s.blocked, 4);
    assert_eq!(s.score_sum, 4.0);
    assert_eq!(
        s.by_prediction,
        vec![(Normal, 2), (Ddos, 3), (Attack, 2), (Blocked, 1)]
    );
    assert_eq!(
        s.by_hour,
        vec![hour_count(0, 6, 3), hour_count(1, 4, 2)],
        "whole hours"
    );
    assert_eq!(
        ip_counts(&s),
        vec![(IP_B.into(), 3, 0.5), (IP_C.into(), 3, 0.833_333_333)],
        "whole hours, ties by address text"
    );
    assert_eq!(
        path_counts(&s),
        vec![("/api".into(), 3), ("/login".into(), 2)]
    );
    assert_eq!(
        s.by_scenario,
        vec![("http-probe".into(), 3), ("ssh".into(), 2)]
    );
    let s = stats(store, hour0_plus(10, 30), 10).await;
    assert_eq!(
        path_counts(&s),
        vec![
            ("/api".into(), 3),
            ("/login".into(), 2),
            ("/".into(), 1),
            ("/admin".into(), 1)
        ]
    );
    assert_eq!(s.top_ips.len(), 3);

    // One millisecond later r3 is out; from minute 11 exactly, r2–r4 too.
    let s = stats(store, hour0_plus(10, 30) + Duration::milliseconds(1), 10).await;
    assert_eq!((s.total, s.blocked), (7, 3));
    let s = stats(store, hour0_plus(11, 0), 10).await;
    assert_eq!((s.total, s.blocked, s.score_sum), (6, 3, 3.25));
    assert_eq!(
        s.by_prediction,
        vec![(Normal, 1), (Ddos, 3), (Attack, 1), (Blocked, 1)]
    );

    // The second hour only: hour 0 is subtracted from the totals.
    let s = stats(store, hour0_plus(60, 0), 10).await;
    assert_eq!((s.total, s.blocked, s.score_sum), (4, 2, 1.75));
    assert_eq!(s.by_hour, vec![hour_count(1, 4, 2)]);
    assert_eq!(
        ip_counts(&s),
        vec![
            (IP_B.into(), 1, 0.5),
            (IP_C.into(), 1, 1.0),
            (IP_D.into(), 1, 0.25)
        ]
    );
    assert_eq!(
        path_counts(&s),
        vec![("/".into(), 1), ("/admin".into(), 1), ("/api".into(), 1)]
    );
    assert!(s.by_scenario.is_empty());

    // A window after every record: nothing.
    let s = stats(store, hour0_plus(180, 0), 10).await;
    assert_eq!(s, RequestStats::default());

    // Three hours later, a window of the last hour (most stored hours lie
    // before it).
    store
        .insert_requests(&[request(
            "r11",
            hour0_plus(185, 0),
            IP_D,
            "/x",
            Attack,
            false,
            0.5,
        )])
        .await
        .expect("insert");
    let s = stats(store, hour0_plus(181, 0), 10).await;
    assert_eq!((s.total, s.blocked), (1, 0));
    assert_eq!(s.by_hour, vec![hour_count(3, 1, 0)]);
    assert_eq!(ip_counts(&s), vec![(IP_D.into(), 1, 0.5)]);
    assert_eq!(path_counts(&s), vec![("/x".into(), 1)]);
}

/// Purging requests cuts the rollups too: whole minutes and hours before
/// the cut-off go, the minute it cuts through loses exactly the purged
/// records, the hour it cuts through stays whole.
pub async fn request_rollups_are_purged<S: RequestLog + ?Sized + 'static>(store: Arc<S>) {
    use Prediction::{Attack, Blocked, Normal};
    let store = &*store;
    store
        .insert_requests(&stats_records())
        .await
        .expect("insert");
    store
        .insert_requests(&[request(
            "r11",
            hour0_plus(185, 0),
            IP_D,
            "/x",
            Attack,
            false,
            0.5,
        )])
        .await
        .expect("insert");

    // In the middle of minute 70: r1–r8 go (r7 and r8 from that minute).
    assert_eq!(
        store
            .purge_requests(hour0_plus(70, 30))
            .await
            .expect("purge"),
        8
    );
    let s = stats(store, hour0_plus(-300, 0), 10).await;
    assert_eq!((s.total, s.blocked, s.score_sum), (3, 1, 0.75));
    assert_eq!(
        s.by_prediction,
        vec![(Normal, 1), (Attack, 1), (Blocked, 1)]
    );
    assert_eq!(s.by_hour, vec![hour_count(1, 2, 1), hour_count(3, 1, 0)]);
    // Hour 1 stays whole (r7, r8 still ranked), hour 0 is gone.
    assert_eq!(
        ip_counts(&s),
        vec![
            (IP_D.into(), 2, 0.375),
            (IP_B.into(), 1, 0.5),
            (IP_C.into(), 1, 1.0)
        ]
    );
    assert_eq!(
        path_counts(&s),
        vec![
            ("/".into(), 1),
            ("/admin".into(), 1),
            ("/api".into(), 1),
            ("/x".into(), 1)
        ]
    );
    let page = store
        .query_requests(&RequestFilter::default(), 0, 10)
        .await
        .expect("query");
    assert_eq!(page.total, 3, "the minute rollup matches the log");
    let status = RequestFilter {
        status: Some(403),
        ..RequestFilter::default()
    };
    assert_eq!(page_ids(store, status, 0, 10).await, (1, vec!["r9".into()]));
    let gateway = RequestFilter {
        gateway: Some("gw-2".into()),
        since: Some(hour0_plus(-300, 0)),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, gateway, 0, 10).await,
        (2, vec!["r10".into(), "r9".into()])
    );

    // Everything.
    assert_eq!(
        store
            .purge_requests(hour0_plus(600, 0))
            .await
            .expect("purge"),
        3
    );
    let s = stats(store, hour0_plus(-300, 0), 10).await;
    assert_eq!(s, RequestStats::default());
    assert_eq!(
        store
            .query_requests(&RequestFilter::default(), 0, 10)
            .await
            .expect("query")
            .total,
        0
    );
}

/// Request-log queries: every filter, totals of all pages (from the rollup
/// or by counting), pages newest first (ties by id), whole records.
pub async fn query_requests_filters_and_pages<S: RequestLog + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let records = stats_records();
    store.insert_requests(&records).await.expect("insert");
    let since = Some(hour0_plus(10, 30));
    let window = RequestFilter {
        since,
        ..RequestFilter::default()
    };

    let page = store.query_requests(&window, 0, 3).await.expect("query");
    assert_eq!(page.total, 8);
    assert_eq!(page.requests.len(), 3);
    assert_eq!(page.requests[0].record, records[9], "whole record");
    assert!(page.requests[0].id > page.requests[1].id);
    assert_eq!(
        page_ids(store, window.clone(), 3, 3).await,
        (8, vec!["r7".into(), "r6".into(), "r5".into()])
    );
    assert_eq!(
        page_ids(store, window.clone(), 6, 10).await,
        (8, vec!["r4".into(), "r3".into()])
    );
    assert_eq!(page_ids(store, window.clone(), 100, 10).await, (8, vec![]));
    assert_eq!(
        page_ids(store, RequestFilter::default(), 0, 0).await,
        (10, vec![])
    );

    let ddos = RequestFilter {
        prediction: Some(Prediction::Ddos),
        ..window.clone()
    };
    assert_eq!(
        page_ids(store, ddos, 1, 2).await,
        (3, vec!["r6".into(), "r5".into()])
    );
    let blocked = RequestFilter {
        blocked: Some(true),
        ..window.clone()
    };
    assert_eq!(
        page_ids(store, blocked, 0, 10).await,
        (4, vec!["r9".into(), "r7".into(), "r6".into(), "r3".into()])
    );
    let normal_forwarded = RequestFilter {
        blocked: Some(false),
        prediction: Some(Prediction::Normal),
        ..window.clone()
    };
    assert_eq!(
        page_ids(store, normal_forwarded, 0, 10).await,
        (2, vec!["r10".into(), "r4".into()])
    );
    let attack_forwarded = RequestFilter {
        blocked: Some(false),
        prediction: Some(Prediction::Attack),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, attack_forwarded, 0, 10).await,
        (1, vec!["r8".into()])
    );

    let client_b = RequestFilter {
        client: Some(IP_B.parse().expect("address")),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, client_b.clone(), 0, 10).await,
        (3, vec!["r8".into(), "r3".into(), "r2".into()])
    );
    assert_eq!(
        page_ids(store, RequestFilter { since, ..client_b }, 0, 10).await,
        (2, vec!["r8".into(), "r3".into()])
    );
    let client_d = RequestFilter {
        client: Some(IP_D.parse().expect("address")),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, client_d, 0, 10).await,
        (1, vec!["r9".into()])
    );

    let prefix = |p: &str| RequestFilter {
        path_prefix: Some(p.to_owned()),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, prefix("/a"), 0, 10).await,
        (4, vec!["r8".into(), "r7".into(), "r6".into(), "r5".into()])
    );
    assert_eq!(page_ids(store, prefix("/api"), 0, 10).await.0, 3);
    assert_eq!(page_ids(store, prefix("/"), 0, 10).await.0, 10);
    assert_eq!(
        page_ids(store, prefix("/%"), 0, 10).await.0,
        0,
        "no pattern"
    );
    assert_eq!(page_ids(store, prefix("/_dmin"), 0, 10).await.0, 0);
    assert_eq!(page_ids(store, prefix("/api/"), 0, 10).await.0, 0);

    let status = RequestFilter {
        status: Some(403),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, status, 0, 2).await,
        (5, vec!["r9".into(), "r7".into()])
    );
    let gateway = RequestFilter {
        gateway: Some("gw-2".into()),
        since: Some(hour0_plus(70, 0)),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, gateway, 0, 10).await,
        (4, vec!["r10".into(), "r9".into(), "r8".into(), "r7".into()])
    );
    // Status and gateway totals from the window's middle of minute 10.
    let status_window = RequestFilter {
        status: Some(403),
        ..window.clone()
    };
    assert_eq!(
        page_ids(store, status_window, 3, 10).await,
        (4, vec!["r3".into()])
    );
    let gateway_window = RequestFilter {
        gateway: Some("gw-1".into()),
        ..window.clone()
    };
    assert_eq!(
        page_ids(store, gateway_window, 0, 10).await,
        (3, vec!["r5".into(), "r4".into(), "r3".into()])
    );
    let forwarded_attack_gw2 = RequestFilter {
        status: Some(200),
        gateway: Some("gw-2".into()),
        prediction: Some(Prediction::Attack),
        blocked: Some(false),
        ..window.clone()
    };
    assert_eq!(
        page_ids(store, forwarded_attack_gw2, 0, 10).await,
        (1, vec!["r8".into()])
    );
    let ok_gw1 = RequestFilter {
        status: Some(200),
        gateway: Some("gw-1".into()),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, ok_gw1, 0, 10).await,
        (3, vec!["r5".into(), "r4".into(), "r1".into()])
    );
    let everything = RequestFilter {
        since,
        client: Some(IP_C.parse().expect("address")),
        path_prefix: Some("/ap".into()),
        prediction: Some(Prediction::Ddos),
        blocked: Some(true),
        status: Some(403),
        gateway: Some("gw-2".into()),
    };
    assert_eq!(
        page_ids(store, everything, 0, 10).await,
        (2, vec!["r7".into(), "r6".into()])
    );

    // By id, oldest first.
    let first = store.requests_after(0, 4).await.expect("after");
    let ids: Vec<&str> = first.iter().map(|r| r.record.request_id.as_str()).collect();
    assert_eq!(ids, ["r1", "r2", "r3", "r4"]);
    assert_eq!(first[0].record, records[0]);
    assert!(first.windows(2).all(|w| w[0].id < w[1].id));
    let rest = store.requests_after(first[3].id, 100).await.expect("after");
    let ids: Vec<&str> = rest.iter().map(|r| r.record.request_id.as_str()).collect();
    assert_eq!(ids, ["r5", "r6", "r7", "r8", "r9", "r10"]);
    assert!(
        store
            .requests_after(rest[5].id, 100)
            .await
            .expect("after")
            .is_empty()
    );
}
