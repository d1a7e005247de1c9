//! The landing page in a real browser: Debian's `chromium`, headless.
//!
//! The page computes nothing (no script), so what a browser shows is decided by its HTML
//! and CSS alone. To measure it, the test fetches the page the `--demo` binary serves,
//! writes a copy with a probe script appended into a temporary directory (the page has
//! no external asset, so the copy lays out exactly as the original), and lets Chromium
//! load it at a given window size with `--dump-dom`. The probe runs after layout and
//! writes, into the DOM that Chromium prints, the viewport width, the document's scroll
//! width, every element whose right edge passes the viewport, and each figure cell's
//! class and computed background. This measures what a user sees (fonts, wrapping, the
//! collapsed layout of narrow screens) rather than guessing widths from the HTML.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{poll, Running};

/// Debian's package of the browser.
const INSTALL: &str = "apt-get install chromium, or scripts/install-test-tools";
/// A guard against a hung browser, never a measurement.
const BROWSER_LIMIT: Duration = Duration::from_secs(60);

/// Appended to the copy of the page: measures the layout once it is done.
const PROBE: &str = r#"<script>
addEventListener("load", () => {
  const root = document.documentElement;
  const width = root.clientWidth;
  const overflowing = [...document.body.querySelectorAll("*")]
    .filter((e) => e.getBoundingClientRect().right > width + 0.5)
    .map((e) => e.tagName.toLowerCase() + (e.className ? "." + e.className : ""));
  const cells = [...document.querySelectorAll("tr[data-org] > td[data-label]")].map((td) => ({
    org: td.parentElement.dataset.org,
    label: td.dataset.label,
    class: td.className,
    background: getComputedStyle(td).backgroundColor,
  }));
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    innerWidth, clientWidth: width, scrollWidth: root.scrollWidth, overflowing, cells,
  });
  document.body.append(probe);
});
</script>"#;

/// Loads `html` in headless Chromium with a `width` × 900 window; returns the probe's
/// findings.
fn measure(html: &str, width: u32, dir: &Path) -> Value {
    let page = dir.join(format!("page-{width}.html"));
    let probed = html.replace("</body>", &format!("{PROBE}</body>"));
    assert_ne!(probed, html, "the page has no </body>");
    std::fs::write(&page, probed).unwrap();
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--no-first-run",
            &format!("--user-data-dir={}", dir.join("profile").display()),
            &format!("--window-size={width},900"),
            "--virtual-time-budget=5000",
            "--dump-dom",
            &format!("file://{}", page.display()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium ({INSTALL}): {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BROWSER_LIMIT {
            let _ = child.kill();
            panic!("chromium did not finish within {BROWSER_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut dom, mut errors) = (String::new(), String::new());
    child.stdout.unwrap().read_to_string(&mut dom).unwrap();
    child.stderr.unwrap().read_to_string(&mut errors).unwrap();
    assert!(status.success(), "chromium failed: {status}\n{errors}");
    let start = dom
        .find("<pre id=\"probe\">")
        .unwrap_or_else(|| panic!("the probe did not run:\n{errors}\n{dom}"))
        + "<pre id=\"probe\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    // --dump-dom escapes text content as HTML.
    let json = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// `(organization id, column)` of the cells whose class is `class`, in page order.
fn cells_of_class<'a>(probe: &'a Value, class: &str) -> Vec<(&'a str, &'a str)> {
    probe["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["class"] == class)
        .map(|c| (c["org"].as_str().unwrap(), c["label"].as_str().unwrap()))
        .collect()
}

fn assert_fits(probe: &Value, width: u32) {
    assert_eq!(
        probe["innerWidth"], width,
        "window size not applied: {probe}"
    );
    let scroll = probe["scrollWidth"].as_u64().unwrap();
    let client = probe["clientWidth"].as_u64().unwrap();
    assert!(
        scroll <= client,
        "at {width} px the page is {scroll} px wide, wider than its {client} px viewport; overflowing: {}",
        probe["overflowing"]
    );
    assert_eq!(probe["overflowing"], serde_json::json!([]), "at {width} px");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's chromium; run by scripts/test"]
async fn the_demo_landing_page_in_headless_chromium() {
    let mut exporter = Running::start(&["--demo", "--web.listen-address", "127.0.0.1:0"]);
    let base = format!("http://{}", exporter.address().await);
    let http = reqwest::Client::new();
    poll("the first demo refresh", || async {
        let ready = http.get(format!("{base}/-/ready")).send().await.ok()?;
        ready.status().is_success().then_some(())
    })
    .await;
    let html = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    exporter.terminate();
    let dir = tempfile::tempdir().unwrap();

    // A 1,400 px window: the full table, nothing wider than the viewport.
    let wide = measure(&html, 1400, dir.path());
    assert_fits(&wide, 1400);
    // Red where a critical alert fires: Pendant Publishing sits at its pipes and users
    // limits (3 / 3, 5 / 5) and at 91–94 % of its API-call quota
    // (PipefyAPIQuotaNearlyExhausted); it is the first organization.
    assert_eq!(
        cells_of_class(&wide, "critical"),
        [("4242", "pipes"), ("4242", "users"), ("4242", "API calls")]
    );
    assert_eq!(wide["cells"][0]["org"], "4242", "worst first");
    // Yellow where a warning fires: its cards and AI credits (80 % to the critical
    // level), and the unassigned tokens of Pendant and Vandeley, 11 to 12 days before
    // the demo's deadline (PipefyUnassignedTokensDeadlineSoon).
    assert_eq!(
        cells_of_class(&wide, "warn"),
        [
            ("4242", "cards"),
            ("4242", "AI credits"),
            ("4242", "unassigned tokens"),
            ("2", "unassigned tokens"),
        ]
    );
    // The band is what the browser paints, not only a class name.
    for cell in wide["cells"].as_array().unwrap() {
        let expected = match cell["class"].as_str().unwrap() {
            "critical" => "rgb(255, 235, 233)",
            "warn" => "rgb(255, 248, 197)",
            _ => "rgba(0, 0, 0, 0)",
        };
        if cell["label"] != "status" {
            assert_eq!(cell["background"], expected, "{cell}");
        }
    }

    // A small laptop (1,024 px): the table collapses into one block per organization.
    let narrow = measure(&html, 1024, dir.path());
    assert_fits(&narrow, 1024);
    assert_eq!(
        cells_of_class(&narrow, "critical"),
        [("4242", "pipes"), ("4242", "users"), ("4242", "API calls")]
    );
}
