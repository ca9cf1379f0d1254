//! How long the gateway's per-request calls take, single-threaded:
//!
//! ```text
//! cargo run --release -p rampart-detect --example http_detect_speed
//! ```
//!
//! Prints ns per call of `ClientTable::observe` (many clients and one hot
//! client), `Signatures::check` (typical requests) and `check_body_form`,
//! the best of 5 rounds (the machine may be shared).

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;
use rampart_config::HttpDetectionConfig;
use rampart_detect::http::{ClientTable, RequestInfo, Signatures};

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

fn per_call(label: &str, calls: u64, mut f: impl FnMut()) {
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_nanos() as f64 / calls as f64
        })
        .fold(f64::INFINITY, f64::min);
    println!("{label:<58} {best:>8.0} ns/call");
}

fn main() {
    let cfg = HttpDetectionConfig::default();
    let paths: Vec<String> = (0..64).map(|i| format!("/shop/item/{i}")).collect();
    let clients: Vec<IpNet> = (0..10_000u32)
        .map(|i| IpNet::from(IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8])))
        .collect();
    let req = |i: usize| RequestInfo {
        method: "GET",
        path: &paths[i % paths.len()],
        query: None,
        user_agent: Some(UA),
        header_count: 10,
        has_cookie: true,
        has_referer: true,
        has_accept_language: true,
        body_len: None,
    };

    const N: u64 = 1_000_000;
    // Each round goes on from where the last ended: time only moves forward.
    let table = ClientTable::new(&cfg);
    let mut now = 1_000_000u64;
    per_call("observe, 10,000 clients in turn, 1 ms apart", N, || {
        for i in 0..N as usize {
            now += 1;
            black_box(table.observe(clients[i % clients.len()], &req(i), now));
        }
    });
    let table = ClientTable::new(&cfg);
    let mut now = 1_000_000u64;
    per_call("observe, one client, 1 request/ms", N, || {
        for i in 0..N as usize {
            now += 1;
            black_box(table.observe(clients[0], &req(i), now));
        }
    });
    let small = HttpDetectionConfig {
        max_clients: 1000,
        ..cfg.clone()
    };
    let table = ClientTable::new(&small);
    let mut now = 1_000_000u64;
    per_call(
        "observe, every request a new client (cap 1000: evicting)",
        N,
        || {
            for i in 0..N as usize {
                now += 1;
                let c = IpNet::from(IpAddr::from((now as u32).to_be_bytes()));
                black_box(table.observe(c, &req(i), now));
            }
        },
    );

    let sigs = Signatures::with_libinjection(&cfg.signatures).expect("signatures");
    let plain = RequestInfo {
        path: "/static/css/site.min.css",
        ..req(0)
    };
    let with_query = RequestInfo {
        path: "/tienda1/publico/anadir.jsp",
        query: Some("id=3&nombre=Vino+Rioja&precio=100&cantidad=55&B1=A%F1adir+al+carrito"),
        ..req(0)
    };
    let search = RequestInfo {
        path: "/search",
        query: Some("q=o%27reilly+%26+sons+%22complete+works%22&page=2"),
        ..req(0)
    };
    let attack = RequestInfo {
        path: "/item",
        query: Some("id=1%27%20union%20select%201,2,3--"),
        ..req(0)
    };
    const M: u64 = 200_000;
    for (label, r) in [
        ("check, path only", &plain),
        (
            "check, path and 5 plain parameters (CSIC-like)",
            &with_query,
        ),
        (
            "check, a search with quotes (goes to libinjection)",
            &search,
        ),
        ("check, a UNION SELECT (hit)", &attack),
    ] {
        per_call(label, M, || {
            for _ in 0..M {
                black_box(sigs.check(black_box(r)));
            }
        });
    }
    let body = b"modo=registro&login=ramon&password=d1se3ci%F3n&nombre=Ram%F3n&apellidos=Garc%EDa+L%F3pez&email=ramon%40example.com&dni=12345678Z&direccion=C%2F+Mayor+4%2C+2%BA&ciudad=Madrid&cp=28013&provincia=Madrid&ntc=1234567890123456&B1=Registrar";
    per_call("check_body_form, a 14-field registration form", M, || {
        for _ in 0..M {
            black_box(sigs.check_body_form(black_box(body)));
        }
    });
}
