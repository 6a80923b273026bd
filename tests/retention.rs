//! The broker applies retention on its own: with small segments and a byte
//! limit, old segments go, the log start offset moves, and what is left
//! reads back exactly.

mod common;

use std::time::{Duration, Instant};

use common::{kcat, topic, Broker};

#[test]
fn retention_bytes_deletes_old_segments_and_moves_the_log_start() {
    let broker = Broker::start_with_env(&[
        ("SLUICE_LOG__SEGMENT_BYTES", "16384"),
        ("SLUICE_LOG__RETENTION_BYTES", "32768"),
        ("SLUICE_LOG__RETENTION_CHECK_INTERVAL_MS", "100"),
    ]);
    let t = topic("retention");
    let lines: Vec<String> = (0..400)
        .map(|i| format!("{i:05} {}", "r".repeat(400)))
        .collect();
    // One message per produce so the log holds many batches and segments.
    for chunk in lines.chunks(50) {
        let mut input = chunk.join("\n");
        input.push('\n');
        kcat(
            &broker,
            &[
                "-P",
                "-t",
                &t,
                "-p",
                "0",
                "-X",
                "linger.ms=0",
                "-X",
                "batch.num.messages=1",
            ],
            input.as_bytes(),
        )
        .assert_success();
    }
    let earliest = || -> i64 {
        let out = kcat(&broker, &["-Q", "-t", &format!("{t}:0:-2")], b"");
        out.assert_success();
        let text = out.stdout_text();
        text.trim()
            .rsplit(' ')
            .next()
            .and_then(|o| o.parse().ok())
            .unwrap_or_else(|| panic!("kcat -Q said {text:?}"))
    };
    // Retention runs every 100 ms, also while the data was still arriving:
    // wait until the log start has moved and then stays put for several
    // passes (all data is in, so the last pass has nothing more to delete).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = (earliest(), Instant::now());
    let start = loop {
        assert!(
            Instant::now() < deadline,
            "the log start offset never settled (last {})",
            last.0
        );
        std::thread::sleep(Duration::from_millis(50));
        let now = earliest();
        if now != last.0 {
            last = (now, Instant::now());
        } else if now > 0 && last.1.elapsed() >= Duration::from_millis(600) {
            break now;
        }
    };
    // 400 messages of ~420 bytes in 16 KiB segments, 32 KiB kept: most of
    // the log is gone, whole segments only, and the newest data stays.
    assert!(start > 200 && start < 400, "log start offset {start}");
    let out = kcat(
        &broker,
        &["-C", "-t", &t, "-p", "0", "-o", "beginning", "-e", "-q"],
        b"",
    );
    out.assert_success();
    let expected: String = lines[start as usize..]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        out.stdout_text(),
        expected,
        "what retention keeps reads back exactly, from the new start"
    );
}
