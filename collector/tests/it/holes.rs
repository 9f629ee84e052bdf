//! The small holes of issue 15 (part 6), through the real binary: guesses of the admin token
//! are throttled per client address, the store's files are private whatever the umask, a data
//! dir others can reach is refused, links never come from the `Host` header, and environment
//! names follow Sentry's rule.

use crate::support;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{CONTENT_TYPE, HOST, LOCATION, RETRY_AFTER, SET_COOKIE};
use reqwest::{Method, StatusCode, redirect};
use serde_json::json;
use support::{Collector, assert_error, checkin, envelope, interval, sentry_auth};

/// Wrong tokens an address gets before it is locked out (`throttle::FREE_FAILURES`).
const FREE_FAILURES: usize = 5;

/// A client whose connections come from `source` (any of 127/8 reaches loopback on Linux),
/// which shows redirects instead of following them.
fn client_from(source: [u8; 4]) -> Client {
    Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(source)))
        .redirect(redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn login(client: &Client, collector: &Collector, token: &str) -> Response {
    client
        .post(collector.url("/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={token}&next=%2Fmonitors"))
        .send()
        .unwrap()
}

fn monitors(client: &Client, collector: &Collector, token: &str) -> Response {
    client
        .get(collector.url("/api/v1/monitors"))
        .bearer_auth(token)
        .send()
        .unwrap()
}

fn retry_after(response: &Response) -> u64 {
    response
        .headers()
        .get(RETRY_AFTER)
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn wrong_admin_tokens_lock_the_address_out_with_a_doubling_wait() {
    let collector = Collector::start(None);
    let wrong = "0123456789abcdef-not-the-token";

    // The API: five wrong bearer tokens are plain 401s, then the address is refused with 429
    // even with the right token, so the lockout cannot be used to test guesses.
    let guesser = client_from([127, 0, 0, 1]);
    for attempt in 1..=FREE_FAILURES {
        let response = monitors(&guesser, &collector, wrong);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "try {attempt}");
    }
    let refused = monitors(&guesser, &collector, &collector.token);
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&refused);
    assert!((1..=2).contains(&wait), "first lockout {wait} s");
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "try again in");
    // The login form shares the count: the same address is refused there too, as a page.
    let page = login(&guesser, &collector, &collector.token);
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(page.headers().get(SET_COOKIE).is_none(), "no session");
    assert!(retry_after(&page) >= 1);
    assert!(page.text().unwrap().contains("too many wrong admin tokens"));

    // Another address is not affected, on either door.
    let operator = client_from([127, 0, 0, 2]);
    assert_eq!(
        monitors(&operator, &collector, &collector.token).status(),
        StatusCode::OK
    );
    let session = login(&operator, &collector, &collector.token);
    assert_eq!(session.status(), StatusCode::SEE_OTHER);
    assert_eq!(session.headers()[LOCATION], "/monitors");

    // Through the login form alone: five wrong tokens, then 429 with Retry-After.
    let other = client_from([127, 0, 0, 3]);
    for attempt in 1..=FREE_FAILURES {
        let response = login(&other, &collector, wrong);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "try {attempt}");
    }
    let page = login(&other, &collector, wrong);
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&page);
    // After the wait, one more wrong token locks it out for twice as long.
    std::thread::sleep(Duration::from_secs(wait));
    assert_eq!(
        login(&other, &collector, wrong).status(),
        StatusCode::UNAUTHORIZED
    );
    let doubled = login(&other, &collector, wrong);
    assert_eq!(doubled.status(), StatusCode::TOO_MANY_REQUESTS);
    let doubled_wait = retry_after(&doubled);
    assert!(
        doubled_wait >= 2 && doubled_wait > wait - 1,
        "{doubled_wait} after {wait}"
    );
    // Waited out, the right token gets in and the count starts over: a wrong one is a 401.
    std::thread::sleep(Duration::from_secs(doubled_wait));
    assert_eq!(
        login(&other, &collector, &collector.token).status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        login(&other, &collector, wrong).status(),
        StatusCode::UNAUTHORIZED
    );
}

/// `watchpost serve` started by hand (the harness cannot set a umask): the child and its
/// base URL, DSN key and admin token from the startup lines.
struct Started {
    child: Child,
    base: String,
    key: String,
    token: String,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sh -c 'umask 0; exec watchpost serve ...'`: every bit the umask could clear is left for
/// the collector to clear itself.
fn serve_under_umask_0(data_dir: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("umask 0; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_watchpost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env_remove("WATCHPOST_ADMIN_TOKEN")
        .env("RUST_LOG", "info,sled=warn")
        .stdin(Stdio::null());
    command
}

fn start(mut command: Command) -> Started {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn watchpost");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut base, mut key, mut token) = (String::new(), String::new(), String::new());
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("watchpost: listening on ") {
            base = url.to_owned();
        } else if let Some(dsn) = line.strip_prefix("watchpost: DSN http://") {
            key = dsn.split('@').next().unwrap().to_owned();
        } else if let Some(rest) = line.strip_prefix("watchpost: admin token ") {
            token = rest.split_whitespace().next().unwrap().to_owned();
            break;
        }
    }
    assert!(!token.is_empty(), "watchpost printed no admin token line");
    Started {
        child,
        base,
        key,
        token,
    }
}

/// Runs `command` expecting it to exit by itself within `limit` (killed and failed if not);
/// its exit code and stderr.
fn exit_within(mut command: Command, limit: Duration) -> (Option<i32>, String) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watchpost");
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchpost kept running instead of refusing to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

/// Every path under `dir`, itself included, with its permission bits.
fn modes(dir: &Path) -> Vec<(PathBuf, u32, bool)> {
    let meta = std::fs::symlink_metadata(dir).unwrap();
    let mut found = vec![(dir.to_owned(), meta.permissions().mode() & 0o7777, true)];
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            found.extend(modes(&entry.path()));
        } else {
            let mode = entry.metadata().unwrap().permissions().mode() & 0o7777;
            found.push((entry.path(), mode, false));
        }
    }
    found
}

#[test]
fn the_store_is_private_whatever_the_umask_and_a_shared_data_dir_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let served = start(serve_under_umask_0(&data, &[]));
    let http = Client::new();
    // Monitors, check-ins, an issue with its event, a ping log: every tree gets written.
    let config = interval(1, "minute");
    let mut items = vec![];
    let checkins: Vec<String> = (0..20)
        .map(|i| checkin(&format!("job-{i}"), "ok", None, Some(config.clone())))
        .collect();
    for payload in &checkins {
        items.push(("check_in", payload.as_str()));
    }
    let event = json!({"event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
                       "timestamp": 1_700_000_000, "message": "boom", "level": "error"})
    .to_string();
    items.push(("event", event.as_str()));
    let response = http
        .post(format!("{}/api/1/envelope/", served.base))
        .header("X-Sentry-Auth", sentry_auth(&served.key))
        .body(envelope(&items))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let ping = http
        .post(format!("{}/ping/{}/job-0/fail", served.base, served.key))
        .body("x".repeat(10_000))
        .send()
        .unwrap();
    assert_eq!(ping.status(), StatusCode::OK);
    let listed = http
        .get(format!("{}/api/v1/monitors", served.base))
        .bearer_auth(&served.token)
        .send()
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    drop(served);

    let found = modes(&data);
    assert!(
        found.iter().filter(|(_, _, dir)| !dir).count() >= 4,
        "the store, the admin token and the badge key: {found:?}"
    );
    for (path, mode, dir) in &found {
        let want = if *dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} is {mode:04o}", path.display());
    }

    // A data dir others can reach is refused with how to fix it ...
    let shared = root.path().join("shared");
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&shared)
        .unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, stderr) = exit_within(serve_under_umask_0(&shared, &[]), Duration::from_secs(20));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("chmod 700 {}", shared.display()))
            && stderr.contains("--allow-shared-data-dir"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(&shared).unwrap().next().is_none(),
        "nothing was created in it"
    );
    // ... unless allowed, and what is created in it is still private.
    let allowed = start(serve_under_umask_0(&shared, &["--allow-shared-data-dir"]));
    drop(allowed);
    for (path, mode, dir) in modes(&shared).iter().skip(1) {
        let want = if *dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} is {mode:04o}", path.display());
    }
}

/// The badge URLs of a monitor's page, fetched with `host` as the `Host` header.
fn badge_urls_with_host(collector: &Collector, host: &str) -> Vec<String> {
    let client = client_from([127, 0, 0, 1]);
    let session = login(&client, collector, &collector.token);
    let cookie = session.headers()[SET_COOKIE].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = client
        .get(collector.url("/monitors/1/nightly"))
        .header("Cookie", cookie)
        .header(HOST, host)
        .send()
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().unwrap();
    // What precedes each `/badge/...` back to the `"` of `src="` or the `>` of `<code>`.
    let urls: Vec<String> = html
        .match_indices("/badge/1/nightly.")
        .map(|(at, _)| {
            let before = &html[..at];
            before[before.rfind(['"', '>']).unwrap() + 1..].to_owned()
        })
        .collect();
    assert_eq!(urls.len(), 3, "the image and the two shown URLs: {urls:?}");
    urls
}

fn create_nightly(collector: &Collector) {
    let (status, body) = collector.post_envelope(envelope(&[(
        "check_in",
        &checkin("nightly", "ok", None, Some(interval(1, "day"))),
    )]));
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[test]
fn links_use_the_public_url_or_the_listen_address_never_the_host_header() {
    let collector = Collector::start(None);
    create_nightly(&collector);
    for base in badge_urls_with_host(&collector, "evil.example") {
        assert_eq!(base, collector.base, "badge URL base");
    }

    let configured = Collector::start(Some(
        "[server]\npublic_url = \"https://watchpost.example.com/wp\"\n",
    ));
    create_nightly(&configured);
    for base in badge_urls_with_host(&configured, "evil.example") {
        assert_eq!(base, "https://watchpost.example.com/wp", "badge URL base");
    }
}

#[test]
fn environment_names_follow_sentrys_rule() {
    let collector = Collector::start(None);
    let envelope_with = |environment: &str| {
        let mut payload: serde_json::Value =
            serde_json::from_str(&checkin("envs", "ok", None, Some(interval(1, "hour")))).unwrap();
        payload["environment"] = environment.into();
        envelope(&[("check_in", &payload.to_string())])
    };
    let cron = |environment: &str| -> RequestBuilder {
        let encoded: String = environment
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' => char::from(b).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        collector
            .request(
                Method::GET,
                &format!("/api/1/cron/envs?status=ok&environment={encoded}"),
            )
            .header("X-Sentry-Auth", sentry_auth(&collector.key))
    };
    for bad in ["prod eu", "eu/west", "tab\there", "None", ".."] {
        let response = collector
            .request(Method::POST, "/api/1/envelope/")
            .header("X-Sentry-Auth", sentry_auth(&collector.key))
            .body(envelope_with(bad))
            .send()
            .unwrap();
        assert_error(
            response,
            StatusCode::BAD_REQUEST,
            "an environment name is 1 to 64",
        );
        let response = cron(bad).send().unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "without spaces, `/`");
    }
    // `<` and `>` are allowed by Sentry (pages and alerts escape them), so they are here.
    for good in ["staging-eu", "a<b>"] {
        let (status, body) = collector.post_envelope(envelope_with(good));
        assert_eq!(status, StatusCode::OK, "{good}: {body}");
    }
    let stored = collector.api_get("/api/v1/monitors/1/envs");
    let mut envs: Vec<String> = stored
        .as_array()
        .or_else(|| stored["environments"].as_array())
        .expect("environments")
        .iter()
        .map(|env| env["environment"].as_str().unwrap().to_owned())
        .collect();
    envs.sort();
    assert_eq!(envs, ["a<b>", "staging-eu"], "only the valid ones exist");
}
