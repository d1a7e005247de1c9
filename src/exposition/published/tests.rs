//! The published body: parts compressed apart make one gzip member, text kept plain up
//! to a size, scrapes sharing what was rendered before, each format rendered once.

use std::io::Read;

use super::*;

/// The member a scrape sends for parts `a` and `b` rendered before, and `c`; `a`
/// written to its compressor in pieces of `piece` bytes, and kept plain only up to
/// `keep_plain` bytes.
fn gzip_of(a: &str, b: &str, c: &str, piece: usize, keep_plain: usize) -> Vec<u8> {
    let mut writer = PartWriter::new(&GZIP_HEADER, Compression::default(), keep_plain);
    let mut rest = a;
    while !rest.is_empty() {
        let (head, tail) = rest.split_at(piece.min(rest.len()));
        writer.write(head);
        rest = tail;
    }
    let a = writer.finish().unwrap();
    let b = BodyPart::new(b, &[], Compression::fast());
    let mut body = a.deflated().unwrap().bytes.to_vec();
    body.extend_from_slice(&b.deflated().unwrap().bytes);
    body.extend(finish(&[&a, &b], c.as_bytes()));
    body
}

/// What a scrape sends, in one piece.
fn collect(mut body: ScrapeBody) -> Vec<u8> {
    let announced = body.remaining();
    let mut all = Vec::new();
    while let Some(chunk) = body.next_chunk() {
        all.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(all.len() as u64, announced, "Content-Length");
    assert_eq!(body.remaining(), 0);
    all
}

/// The shared bytes of piece `i` of a scrape's body, if it is sent as is.
fn shared(body: &ScrapeBody, i: usize) -> Option<&Bytes> {
    match &body.pieces[body.pieces.len() - 1 - i] {
        Piece::Shared(bytes) => Some(bytes),
        Piece::Inflating(_) => None,
    }
}

/// Decoded by a single-member decoder, which must also have used every byte (so
/// there is exactly one member), and by a multi-member one.
fn gunzip(body: &[u8]) -> String {
    let mut single = flate2::bufread::GzDecoder::new(body);
    let mut text = String::new();
    single.read_to_string(&mut text).unwrap();
    assert!(
        single.into_inner().is_empty(),
        "bytes after the first member"
    );
    let mut multi = String::new();
    flate2::read::MultiGzDecoder::new(body)
        .read_to_string(&mut multi)
        .unwrap();
    assert_eq!(multi, text);
    text
}

#[test]
fn parts_compressed_apart_make_one_gzip_member() {
    // Long and repetitive, so that back-references span many blocks; the later
    // parts repeat the first one's text (their back-references must stay within
    // their own blocks, which a fresh compressor guarantees); a last part over the
    // 65,535 bytes of one stored block.
    let line = |i: usize| {
        format!(
            "pipefy_subscription_used{{organization_id=\"{i}\"}} {}\n",
            i % 7
        )
    };
    let a: String = (0..20_000).map(line).collect();
    let b: String = (0..300).map(line).collect();
    let c: String = (0..2_000).map(line).collect();
    assert!(c.len() > usize::from(u16::MAX));
    for (piece, keep_plain) in [(usize::MAX, usize::MAX), (4096, 0), (7, 1000)] {
        let gzip_of = |a, b, c| gunzip(&gzip_of(a, b, c, piece, keep_plain));
        assert_eq!(gzip_of(&a, &b, &c), format!("{a}{b}{c}"));
        assert_eq!(gzip_of(&a, &b, "x"), format!("{a}{b}x"));
        assert_eq!(gzip_of(&a, "", ""), a);
        assert_eq!(gzip_of("", "", &c), c);
        assert_eq!(gzip_of("", "", ""), "");
    }
}

#[test]
fn text_is_kept_plain_up_to_the_limit_then_only_deflated() {
    let kept = |text: &str, keep_plain| {
        let mut writer = PartWriter::new(&GZIP_HEADER, Compression::default(), keep_plain);
        for line in text.split_inclusive('\n') {
            writer.write(line);
        }
        let part = writer.finish().unwrap();
        assert_eq!(part.len, text.len() as u64);
        let piece = part.plain_piece();
        let body = ScrapeBody::new(vec![piece], part.len, false);
        let plain = matches!(body.pieces[0], Piece::Shared(_));
        assert_eq!(String::from_utf8(collect(body)).unwrap(), text);
        plain
    };
    let text: String = (0..10_000)
        .map(|i| format!("m{{i=\"{i}\"}} {i}\n"))
        .collect();
    assert!(kept(&text, usize::MAX));
    assert!(kept(&text, text.len()));
    assert!(!kept(&text, text.len() - 1));
    assert!(!kept(&text, 0));
    assert!(kept("", 0), "nothing is over any limit");
}

/// `n` organizations known by name only: one `pipefy_organization_info` line each.
fn named_organizations(n: usize) -> Snapshot {
    let orgs = (0..n).map(|i| {
        let meta = crate::snapshot::OrgMeta {
            id: i.to_string(),
            name: format!("Organization {i}"),
            ..Default::default()
        };
        let org = crate::snapshot::OrgSnapshot {
            meta,
            ..Default::default()
        };
        (i.to_string(), org)
    });
    Snapshot {
        orgs: orgs.collect(),
        cycles: 1,
        last_cycle: None,
    }
}

#[tokio::test]
async fn scrapes_share_what_was_rendered_before() {
    let info = Arc::new(ExpositionInfo {
        collectors: crate::collectors::every_variant(),
        version: "1.2.3",
        revision: "abc",
        shard: crate::shard::Shard::ALL,
    });
    let snapshot = Arc::new(named_organizations(2_000));
    let now = SystemTime::now();
    // Kept plain, then too large to be: plain scrapes inflate the gzip one.
    for (keep_plain, format) in [PLAIN_KEPT_UP_TO, 1000]
        .into_iter()
        .flat_map(|k| Format::ALL.map(|f| (k, f)))
    {
        // Rendered at publication in OpenMetrics only: the text format on demand.
        let published = Published::with_plain_limit(
            snapshot.clone(),
            info.clone(),
            now,
            &[Format::OpenMetrics],
            keep_plain,
        );
        assert!(published.bodies[1].initialized());
        assert!(!published.bodies[0].initialized());
        for gzip in [false, true] {
            let metrics = SelfMetrics::new(&["limits"], &["PipefyLimits"]);
            let own = SelfMetricsParts::default();
            let scrape = || async {
                let part = own.get(&metrics, format);
                published.scrape(&part, &metrics, now, format, gzip).await
            };
            let first = scrape().await;
            let second = scrape().await;
            metrics.observe_request("PipefyLimits", "200", Duration::from_secs(1));
            let third = scrape().await;
            assert_eq!((first.gzip, second.gzip, third.gzip), (gzip, gzip, gzip));
            let same = |a: &ScrapeBody, b: &ScrapeBody, i| match (shared(a, i), shared(b, i)) {
                (Some(a), Some(b)) => a.as_ptr() == b.as_ptr() && a.len() == b.len(),
                _ => false,
            };
            // The same bytes, not equal copies: the snapshot's part always (unless
            // it is inflated), the self-metrics part until they change.
            let inflated = !gzip && keep_plain == 1000;
            assert_eq!(shared(&first, 0).is_none(), inflated);
            assert_eq!(same(&first, &second, 0), !inflated);
            assert_eq!(same(&first, &third, 0), !inflated);
            assert!(same(&first, &second, 1));
            assert!(!same(&first, &third, 1), "rendered again");

            let mut body = collect(third);
            if gzip {
                body = gunzip(&body).into_bytes();
            }
            let text = String::from_utf8(body).unwrap();
            let expected = super::super::render(&snapshot, &metrics, &info, now, format);
            // The expected body reads the process metrics again: compare up to them.
            let cut = |s: &str| s[..s.find("# HELP process_").unwrap_or(s.len())].to_owned();
            assert_eq!(cut(&text), cut(&expected));
            let (requests, info_line, end) = match format {
                Format::Text => (
                    "pipefy_exporter_api_requests_total{operation=\"PipefyLimits\",status=\"200\"} 1\n",
                    "pipefy_organization_info{organization_id=\"1999\",organization_name=\"Organization 1999\",organization_uuid=\"\",plan=\"\"} 1\n",
                    "",
                ),
                Format::OpenMetrics => (
                    "pipefy_exporter_api_requests_total{operation=\"PipefyLimits\",status=\"200\"} 1\n",
                    "pipefy_organization_info{organization_id=\"1999\",organization_name=\"Organization 1999\",organization_uuid=\"\",plan=\"\"} 1\n",
                    "# EOF\n",
                ),
            };
            assert!(text.contains(requests), "{text}");
            assert!(text.contains(info_line));
            assert_eq!(text.ends_with("# EOF\n"), !end.is_empty());
        }
        // Both formats were asked for: the next publication renders both at once.
        let next = published.next_formats();
        assert!(next.contains(&format));
    }
}

#[test]
fn the_next_publication_renders_what_scrapes_asked_for() {
    let publish = |formats: &[Format]| {
        Published::new(
            Arc::default(),
            Arc::new(ExpositionInfo::new(&[], crate::shard::Shard::ALL)),
            SystemTime::now(),
            formats,
        )
    };
    // At first, OpenMetrics: what Prometheus asks for.
    assert_eq!(publish(&[]).next_formats(), [Format::OpenMetrics]);
    // Nobody scraped this one: the guess carries over.
    assert_eq!(publish(&[Format::Text]).next_formats(), [Format::Text]);
    let published = publish(&[Format::OpenMetrics]);
    published.asked[Format::Text.index()].store(true, Ordering::Relaxed);
    assert_eq!(published.next_formats(), [Format::Text]);
    published.asked[Format::OpenMetrics.index()].store(true, Ordering::Relaxed);
    assert_eq!(
        published.next_formats(),
        [Format::Text, Format::OpenMetrics]
    );
}

#[tokio::test]
async fn a_scrape_that_gives_up_does_not_cancel_the_render_it_started() {
    let info = Arc::new(ExpositionInfo::new(
        &crate::collectors::every_variant(),
        crate::shard::Shard::ALL,
    ));
    let snapshot = Arc::new(named_organizations(5_000));
    let published = Published::new(snapshot, info, SystemTime::now(), &[]);
    // Polled once, then dropped: a scraper whose timeout passed while the text format
    // was being rendered for it.
    let gave_up = tokio::time::timeout(Duration::ZERO, published.body(Format::Text)).await;
    assert!(
        gave_up.is_err(),
        "rendering 5,000 organizations takes a while"
    );
    // The render goes on, and is there for the next scrape without starting again.
    let rendered = async {
        while !published.bodies[Format::Text.index()].initialized() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), rendered)
        .await
        .expect("the render finished on its own");
    assert!(!published.bodies[Format::OpenMetrics.index()].initialized());
}
