//! The gateway's HTTP/1 framing guard: arbitrary client bytes, delivered
//! in pieces whose size the input chooses, never make it panic, and what
//! it hands on is a prefix of the input (plus the refusal line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_http::framing::FramingGuard;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|data: &[u8]| {
    let Some((&piece, input)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut guard = FramingGuard::new(server, 4096);
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            for chunk in input.chunks(piece) {
                if client.write_all(chunk).await.is_err() {
                    return;
                }
            }
            let _ = client.shutdown().await;
        });
        let mut out = Vec::new();
        let _ = guard.read_to_end(&mut out).await;
        let _ = writer.await;
        let refused = guard.rejection().is_some();
        let passed = if refused {
            out.strip_suffix(b"BAD\r\n\r\n").unwrap_or(&out)
        } else {
            &out[..]
        };
        // The guard may hand hyper one leading empty line (its nudge).
        let original = &data[1..];
        assert!(
            original.starts_with(passed)
                || passed
                    .strip_prefix(b"\n")
                    .is_some_and(|rest| original.starts_with(rest))
        );
    });
});
