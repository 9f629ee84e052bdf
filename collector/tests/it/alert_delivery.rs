//! Alerts reach a person, rate-limited and never lost: the real dispatcher and channels against
//! fake destinations that are real servers on loopback (HTTP fakes for Telegram, webhooks,
//! Slack and Alertmanager; `aiosmtpd` for email), with short paces and backoffs.

use crate::alert_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alert_support::{
    Fake, MemoryOutbox, Smtp, channel, fast_options, monitor_alert, ok_json, probe_alert,
    reserve_port, run, status, wait_for,
};
use axum::http::StatusCode;
use serde_json::{Value, json};
use watchpost_collector::alert::{Channel, DIGEST_RULE, DeliveryState};
use watchpost_collector::config::{ChannelKind, Secret};
use watchpost_collector::engine::alerting::{Alert, Payload};

const LONG: Duration = Duration::from_secs(15);

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn telegram(api_url: &str, token: &str, chat_id: &str) -> ChannelKind {
    ChannelKind::Telegram {
        bot_token: Secret::new(token),
        chat_id: chat_id.to_owned(),
        api_url: api_url.to_owned(),
    }
}

fn telegram_ok() -> alert_support::Answer {
    ok_json(&json!({"ok": true, "result": {"message_id": 1}}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_is_down_then_failing_gets_every_alert_in_order_as_the_contract_json() {
    let addr = reserve_port();
    let outbox = Arc::new(MemoryOutbox::default());
    let alerts = [
        monitor_alert("nightly-backup", false),
        probe_alert("api-health", true),
        monitor_alert("nightly-backup", true),
    ];
    for alert in &alerts {
        outbox.push("hook", "jobs", alert);
    }
    let options = fast_options();
    let url = format!("http://{addr}/hook?token=s3cret");
    let hook = channel(
        "hook",
        ChannelKind::Webhook {
            url: Secret::new(&url),
        },
        &options,
    );
    assert!(
        !format!("{hook:?}").contains("s3cret"),
        "Debug hides the URL's secret"
    );
    let dispatcher = run(&outbox, vec![hook], options);

    // Nothing listens yet: connections are refused and retried.
    wait_for("retries against a closed port", LONG, || {
        let head = outbox.entry(1);
        head.attempts >= 2
            && head
                .last_error
                .as_deref()
                .unwrap_or("")
                .contains("could not connect")
    })
    .await;
    assert_eq!(
        outbox.entry(2).attempts,
        0,
        "later alerts wait behind the first"
    );
    let error = outbox.entry(1).last_error.unwrap();
    assert!(
        !error.contains("s3cret"),
        "errors never carry the URL: {error}"
    );

    // Up, but failing for three requests, then healthy.
    let fake = Fake::start_on(addr, |_, n| {
        if n < 3 {
            status(500, "database is down")
        } else {
            status(200, "")
        }
    })
    .await;
    wait_for("every alert delivered", LONG, || outbox.drained()).await;
    dispatcher.stop().await;

    for entry in outbox.entries() {
        assert_eq!(entry.state, DeliveryState::Sent, "{entry:?}");
    }
    assert_eq!(
        outbox.entry(1).last_error.as_deref(),
        Some("HTTP 500 Internal Server Error: database is down")
    );
    let seen = fake.seen();
    assert_eq!(seen.len(), 6, "3 failures and 3 deliveries");
    let position = |body: &Value| {
        alerts
            .iter()
            .position(|a| serde_json::to_value(a).unwrap() == *body)
            .expect("a request carries one of the alerts, exactly")
    };
    let order: Vec<usize> = seen.iter().map(|s| position(&s.json)).collect();
    assert!(order.is_sorted(), "in order, retries included: {order:?}");
    let accepted: Vec<Value> = fake.accepted().into_iter().map(|s| s.json).collect();
    let expected: Vec<Value> = alerts
        .iter()
        .map(|a| serde_json::to_value(a).unwrap())
        .collect();
    assert_eq!(
        accepted, expected,
        "each alert once, in order, exactly its JSON"
    );
    for request in &seen {
        assert_eq!(request.path, "/hook?token=s3cret");
        assert_eq!(request.headers["content-type"], "application/json");
    }

    // The §3.5 contract, key by key.
    let failed = &accepted[0];
    assert_eq!(
        keys(failed),
        BTreeSet::from([
            "kind",
            "severity",
            "title",
            "message",
            "source",
            "project",
            "environment",
            "timestamp",
            "url",
            "monitor",
            "incident"
        ])
    );
    assert_eq!(
        keys(&failed["monitor"]),
        BTreeSet::from([
            "id",
            "slug",
            "name",
            "environment",
            "status",
            "reason",
            "config",
            "last_ok"
        ])
    );
    assert_eq!(failed["kind"], "monitor.failed");
    assert_eq!(failed["severity"], "critical");
    assert_eq!(failed["monitor"]["reason"], "missed_checkin");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .starts_with("3 missed check-ins detected.")
    );
    assert_eq!(
        failed["url"],
        "http://watchpost.example:8470/monitors/1/nightly-backup?environment=production"
    );
    assert_eq!(
        keys(&accepted[1]["probe"]),
        BTreeSet::from(["name", "url", "status_code", "error"])
    );
    assert_eq!(accepted[2]["kind"], "monitor.recovered");
    assert_eq!(accepted[2]["monitor"]["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_honours_retry_after_and_paces_each_chat() {
    let fake = Fake::start(|_, n| {
        if n == 0 {
            (
                StatusCode::TOO_MANY_REQUESTS,
                vec![("content-type", "application/json".to_owned())],
                json!({"ok": false, "error_code": 429,
                       "description": "Too Many Requests: retry after 1",
                       "parameters": {"retry_after": 1}})
                .to_string(),
            )
        } else {
            telegram_ok()
        }
    })
    .await;
    let outbox = Arc::new(MemoryOutbox::default());
    let alerts = [
        probe_alert("<db & cache>", true),
        probe_alert("api", true),
        probe_alert("queue", true),
        probe_alert("api", false),
    ];
    for alert in &alerts {
        outbox.push("tg", "uptime", alert);
    }
    let options = fast_options();
    let tg = channel("tg", telegram(&fake.url, "123:SECRET", "4242"), &options);
    assert!(!format!("{tg:?}").contains("SECRET"));
    let dispatcher = run(&outbox, vec![tg], options);
    wait_for("every message sent", LONG, || outbox.drained()).await;
    dispatcher.stop().await;

    assert!(
        outbox
            .entries()
            .iter()
            .all(|e| e.state == DeliveryState::Sent)
    );
    assert_eq!(outbox.entry(1).attempts, 2, "the 429 was retried");
    let seen = fake.seen();
    assert_eq!(seen.len(), 5);
    let gap = |i: usize| seen[i].at.duration_since(seen[i - 1].at);
    assert!(
        gap(1) >= Duration::from_millis(950),
        "retry_after 1 s honoured, waited {:?}",
        gap(1)
    );
    for i in 2..seen.len() {
        assert!(
            gap(i) >= Duration::from_millis(95),
            "one chat is paced (100 ms in this test): request {i} came {:?} after the previous",
            gap(i)
        );
    }
    for request in &seen {
        assert_eq!(request.path, "/bot123:SECRET/sendMessage");
        assert_eq!(
            request.json["chat_id"], 4242,
            "numeric chat ids go as numbers"
        );
        assert_eq!(request.json["parse_mode"], "HTML");
        assert_eq!(request.json["disable_web_page_preview"], true);
    }
    let texts: Vec<&str> = seen[1..]
        .iter()
        .map(|s| s.json["text"].as_str().unwrap())
        .collect();
    assert!(
        texts[0].starts_with("🔴 <b>Probe &lt;db &amp; cache&gt; is down</b>\n"),
        "{}",
        texts[0]
    );
    assert!(texts[0].contains("<a href=\"http://watchpost.example:8470/probes/%3Cdb%20%26%20cache%3E\">Open in Watchpost</a>"), "{}", texts[0]);
    assert!(texts[1].contains("Probe api is down"));
    assert!(texts[2].contains("Probe queue is down"));
    assert!(
        texts[3].starts_with("🟢 <b>Probe api is up</b>"),
        "{texts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_follows_a_migration_and_fails_for_good_on_a_missing_chat_or_bad_token() {
    let fake = Fake::start(|seen, _| {
        let bad = |description: &str, code: u16| {
            (
                StatusCode::from_u16(code).unwrap(),
                vec![("content-type", "application/json".to_owned())],
                json!({"ok": false, "error_code": code, "description": description}).to_string(),
            )
        };
        if seen.path.contains("bad:TOKEN") {
            return bad("Unauthorized", 401);
        }
        match seen.json["chat_id"].as_i64() {
            Some(-4001) => (
                StatusCode::BAD_REQUEST,
                Vec::new(),
                json!({"ok": false, "error_code": 400,
                       "description": "Bad Request: group chat was upgraded to a supergroup chat",
                       "parameters": {"migrate_to_chat_id": -1_009_876_543_210_i64}})
                .to_string(),
            ),
            Some(777) => bad("Bad Request: chat not found", 400),
            _ => telegram_ok(),
        }
    })
    .await;
    let outbox = Arc::new(MemoryOutbox::default());
    let alert = monitor_alert("nightly-backup", false);
    let group = outbox.push("group", "jobs", &alert);
    let missing = outbox.push("missing", "jobs", &alert);
    let revoked = outbox.push("revoked", "jobs", &alert);
    let options = fast_options();
    let channels = vec![
        channel("group", telegram(&fake.url, "1:OK", "-4001"), &options),
        channel("missing", telegram(&fake.url, "1:OK", "777"), &options),
        channel("revoked", telegram(&fake.url, "bad:TOKEN", "1"), &options),
    ];
    let dispatcher = run(&outbox, channels, options);
    let group_channel = Arc::clone(&dispatcher.channels[0]);
    wait_for("all three settled", LONG, || outbox.drained()).await;
    dispatcher.stop().await;

    let entry = outbox.entry(group);
    assert_eq!(
        (entry.state, entry.attempts),
        (DeliveryState::Sent, 1),
        "followed at once"
    );
    let Channel::Telegram(tg) = &*group_channel else {
        panic!("a telegram channel")
    };
    assert_eq!(
        tg.chat_id(),
        "-1009876543210",
        "the new chat id is kept for later messages"
    );
    let chats: Vec<Value> = fake
        .seen()
        .iter()
        .filter(|s| s.path.contains("1:OK"))
        .map(|s| s.json["chat_id"].clone())
        .filter(|c| c != &json!(777))
        .collect();
    assert_eq!(chats, [json!(-4001), json!(-1_009_876_543_210_i64)]);

    let entry = outbox.entry(missing);
    assert_eq!((entry.state, entry.attempts), (DeliveryState::Failed, 1));
    assert_eq!(
        entry.last_error.as_deref(),
        Some("Telegram 400: Bad Request: chat not found")
    );
    let entry = outbox.entry(revoked);
    assert_eq!((entry.state, entry.attempts), (DeliveryState::Failed, 1));
    let error = entry.last_error.unwrap();
    assert_eq!(error, "Telegram 401: Unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_retries_after_429_and_stops_at_a_gone_webhook() {
    let live_calls = AtomicUsize::new(0);
    let fake = Fake::start(move |seen, _| match seen.path.as_str() {
        "/services/T0/B0/live" if live_calls.fetch_add(1, Ordering::SeqCst) == 0 => (
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", "1".to_owned())],
            "rate_limited".to_owned(),
        ),
        "/services/T0/B0/live" => status(200, "ok"),
        "/services/T0/B0/gone" => status(404, "no_service"),
        _ => status(403, "invalid_token"),
    })
    .await;
    let outbox = Arc::new(MemoryOutbox::default());
    let live = outbox.push("slack", "jobs", &monitor_alert("nightly-backup", false));
    let live_2 = outbox.push("slack", "uptime", &probe_alert("<!channel>", true));
    let gone = outbox.push(
        "slack-gone",
        "jobs",
        &monitor_alert("nightly-backup", false),
    );
    let revoked = outbox.push(
        "slack-revoked",
        "jobs",
        &monitor_alert("nightly-backup", false),
    );
    let options = fast_options();
    let slack = |name: &str, path: &str| {
        let url = Secret::new(format!("{}/services/T0/B0/{path}", fake.url));
        channel(name, ChannelKind::Slack { url }, &options)
    };
    let channels = vec![
        slack("slack", "live"),
        slack("slack-gone", "gone"),
        slack("slack-revoked", "revoked"),
    ];
    assert!(channels.iter().all(|c| !format!("{c:?}").contains("T0/B0")));
    let dispatcher = run(&outbox, channels, options.clone());
    wait_for("all settled", LONG, || outbox.drained()).await;
    dispatcher.stop().await;

    assert_eq!(outbox.entry(live).state, DeliveryState::Sent);
    assert_eq!(outbox.entry(live).attempts, 2);
    assert_eq!(outbox.entry(live_2).state, DeliveryState::Sent);
    let entry = outbox.entry(gone);
    assert_eq!((entry.state, entry.attempts), (DeliveryState::Failed, 1));
    assert!(entry.last_error.unwrap().contains("no_service"));
    assert_eq!(outbox.entry(revoked).state, DeliveryState::Failed);

    let live: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path.ends_with("/live"))
        .collect();
    assert_eq!(live.len(), 3);
    assert!(
        live[1].at.duration_since(live[0].at) >= Duration::from_millis(950),
        "Retry-After: 1"
    );
    assert!(
        live[2].at.duration_since(live[1].at) >= Duration::from_millis(95),
        "paced"
    );
    assert_eq!(keys(&live[1].json), BTreeSet::from(["text"]));
    let text = live[1].json["text"].as_str().unwrap();
    assert_eq!(
        text,
        "🔴 *Monitor nightly-backup (production) is failing*\n\
         3 missed check-ins detected. Failing since 2026-05-01 03:00:00 UTC; last successful \
         check-in 2026-05-01 01:00:00 UTC. Project 1.\n\
         _monitor.failed · project 1 · production · 2026-05-01 03:05:00 UTC_\n\
         <http://watchpost.example:8470/monitors/1/nightly-backup?environment=production|Open in Watchpost>"
    );
    let text = live[2].json["text"].as_str().unwrap();
    assert!(
        text.contains("*Probe &lt;!channel&gt; is down*"),
        "user data cannot ping: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_gets_firing_alerts_resent_until_resolved_then_ends_at() {
    let am1 = Fake::start(|_, _| status(200, "")).await;
    let am2 = Fake::start(|_, _| status(200, "")).await;
    let outbox = Arc::new(MemoryOutbox::default());
    outbox.push("am", "jobs", &monitor_alert("nightly-backup", false));
    let options = fast_options();
    let am = channel(
        "am",
        ChannelKind::Alertmanager {
            urls: vec![Secret::new(&am1.url), Secret::new(format!("{}/", am2.url))],
        },
        &options,
    );
    let dispatcher = run(&outbox, vec![am], options);
    wait_for("firing alert posted and re-sent to both", LONG, || {
        am1.seen().len() >= 3 && am2.seen().len() >= 3
    })
    .await;
    let firing_labels = json!({
        "alertname": "WatchpostMonitorFailed", "severity": "critical", "project": "1",
        "slug": "nightly-backup", "environment": "production"
    });
    for fake in [&am1, &am2] {
        for request in fake.seen() {
            assert_eq!(request.path, "/api/v2/alerts");
            let batch = request.json.as_array().expect("a JSON array");
            assert_eq!(batch.len(), 1);
            let alert = &batch[0];
            assert_eq!(alert["labels"], firing_labels);
            assert_eq!(alert["startsAt"], "2026-05-01T03:05:00Z");
            assert!(alert.get("endsAt").is_none(), "firing: no endsAt");
            assert_eq!(
                alert["generatorURL"],
                "http://watchpost.example:8470/monitors/1/nightly-backup?environment=production"
            );
            assert_eq!(
                alert["annotations"]["summary"],
                "Monitor nightly-backup (production) is failing"
            );
            assert!(
                alert["annotations"]["description"]
                    .as_str()
                    .unwrap()
                    .starts_with("3 missed")
            );
        }
    }

    outbox.push("am", "jobs", &monitor_alert("nightly-backup", true));
    dispatcher.handle.wake("am");
    let resolved = |fake: &Fake| {
        fake.seen()
            .iter()
            .position(|s| s.json[0].get("endsAt").is_some())
    };
    wait_for("the resolution", LONG, || {
        resolved(&am1).is_some() && resolved(&am2).is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    dispatcher.stop().await;
    assert!(outbox.drained());
    for fake in [&am1, &am2] {
        let seen = fake.seen();
        let first = resolved(fake).unwrap();
        let alert = &seen[first].json[0];
        assert_eq!(alert["labels"], firing_labels, "the same identity");
        assert_eq!(alert["startsAt"], "2026-05-01T03:05:00Z");
        assert_eq!(alert["endsAt"], "2026-05-01T04:00:00Z");
        assert!(
            seen[first..]
                .iter()
                .all(|s| s.json[0].get("endsAt").is_some()),
            "after the resolution only the resolution is re-sent"
        );
        assert!(seen.len() > first + 1, "the resolution is re-sent too");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_arrives_with_text_and_html_parts_once_the_smtp_server_comes_up() {
    let addr = reserve_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = Arc::new(MemoryOutbox::default());
    let alert = monitor_alert("nightly-backup", false);
    let id = outbox.push("mail", "jobs", &alert);
    let options = fast_options();
    let mail = channel(
        "mail",
        ChannelKind::Email {
            smtp_url: Secret::new(format!("smtp://{addr}")),
            username: Some(Secret::new("user")),
            password: Some(Secret::new("secret")),
            from: "Watchpost <alerts@example.com>".to_owned(),
            to: vec![
                "oncall@example.com".to_owned(),
                "Backup Person <backup@example.com>".to_owned(),
            ],
        },
        &options,
    );
    assert!(!format!("{mail:?}").contains("secret"));
    let dispatcher = run(&outbox, vec![mail], options);
    wait_for("attempts against the closed port", LONG, || {
        let entry = outbox.entry(id);
        entry.attempts >= 2 && entry.state == DeliveryState::Pending
    })
    .await;
    let error = outbox.entry(id).last_error.unwrap();
    assert!(error.starts_with(&format!("SMTP server {addr}")), "{error}");
    assert!(!error.contains("secret"));

    let smtp_dir = dir.path().to_owned();
    let smtp = tokio::task::spawn_blocking(move || Smtp::start(addr, &smtp_dir))
        .await
        .unwrap();
    wait_for("the email", Duration::from_secs(30), || outbox.drained()).await;
    dispatcher.stop().await;
    assert_eq!(outbox.entry(id).state, DeliveryState::Sent);

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message["authenticated"], true);
    assert_eq!(message["mail_from"], "alerts@example.com");
    assert_eq!(
        message["rcpt_tos"],
        json!(["oncall@example.com", "backup@example.com"])
    );
    assert_eq!(
        message["subject"],
        "[Watchpost] Monitor nightly-backup (production) is failing"
    );
    assert_eq!(message["content_type"], "multipart/alternative");
    let parts = message["parts"].as_array().unwrap();
    let types: Vec<&str> = parts.iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    let plain = parts[0]["content"].as_str().unwrap();
    assert!(
        plain.contains("3 missed check-ins detected. Failing since 2026-05-01 03:00:00 UTC"),
        "{plain}"
    );
    assert!(plain.contains(&alert.url));
    let html = parts[1]["content"].as_str().unwrap();
    assert!(
        html.contains("<h2>🔴 Monitor nightly-backup (production) is failing</h2>"),
        "{html}"
    );
    assert!(html.contains("<a href=\"http://watchpost.example:8470/monitors/1/nightly-backup?environment=production\">"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_is_collapsed_into_one_digest_and_nothing_is_lost() {
    let fake = Fake::start(|_, _| telegram_ok()).await;
    let outbox = Arc::new(MemoryOutbox::default());
    for i in 0..30 {
        outbox.push("tg", "uptime", &probe_alert(&format!("site-{i:02}"), true));
    }
    let mut options = fast_options();
    options.digest_backlog = Some(5);
    let tg = channel("tg", telegram(&fake.url, "1:T", "-100200"), &options);
    let dispatcher = run(&outbox, vec![tg], options);
    wait_for("the digest", LONG, || outbox.drained()).await;

    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "one message for the whole backlog");
    let text = seen[0].json["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "🔴 <b>Watchpost digest: 30 alerts about 30 subjects (30 critical now) since"
        ),
        "{text}"
    );
    for i in 0..30 {
        assert!(
            text.contains(&format!("Probe site-{i:02} is down")),
            "site-{i:02} listed"
        );
    }
    let entries = outbox.entries();
    assert_eq!(entries[0].state, DeliveryState::Sent);
    assert_eq!(entries[0].rule, DIGEST_RULE);
    assert!(matches!(&entries[0].payload, Payload::Digest(d) if d.total == 30));
    for entry in &entries[1..] {
        assert_eq!(entry.state, DeliveryState::Suppressed);
        assert_eq!(entry.last_error.as_deref(), Some("merged into digest #1"));
    }

    // A small backlog afterwards goes message by message.
    outbox.push("tg", "uptime", &probe_alert("site-00", false));
    outbox.push("tg", "uptime", &probe_alert("site-01", false));
    dispatcher.handle.wake("tg");
    wait_for("the two recoveries", LONG, || outbox.drained()).await;
    dispatcher.stop().await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        seen[1].json["text"]
            .as_str()
            .unwrap()
            .contains("Probe site-00 is up")
    );
    assert!(
        seen[2].json["text"]
            .as_str()
            .unwrap()
            .contains("Probe site-01 is up")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_are_suppressed_counted_and_a_flap_still_ends_in_the_true_state() {
    let fake = Fake::start(|_, _| status(200, "")).await;
    let outbox = Arc::new(MemoryOutbox::default());
    let mut options = fast_options();
    options.dedup_window = Duration::from_millis(500);
    let url = Secret::new(format!("{}/hook", fake.url));
    let hook = channel("hook", ChannelKind::Webhook { url }, &options);
    let down = probe_alert("api", true);
    let up = probe_alert("api", false);
    for _ in 0..3 {
        outbox.push("hook", "uptime", &down);
    }
    let dispatcher = run(&outbox, vec![hook], options);
    wait_for("the first round", LONG, || outbox.drained()).await;
    let states: Vec<DeliveryState> = outbox.entries().iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        [
            DeliveryState::Sent,
            DeliveryState::Suppressed,
            DeliveryState::Suppressed
        ]
    );

    // Flap: up, then down again inside the window. The up goes at once; the down is held to
    // the end of the window (not dropped), then sent with the count of held-back repeats.
    outbox.push("hook", "uptime", &up);
    let last = outbox.push("hook", "uptime", &down);
    dispatcher.handle.wake("hook");
    wait_for("the flap", LONG, || outbox.drained()).await;
    dispatcher.stop().await;

    let accepted = fake.accepted();
    let kinds: Vec<&str> = accepted
        .iter()
        .map(|s| s.json["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["probe.down", "probe.up", "probe.down"],
        "the person ends up knowing it is down"
    );
    assert!(
        accepted[2].at.duration_since(accepted[0].at) >= Duration::from_millis(480),
        "held to the end of the window"
    );
    let message = accepted[2].json["message"].as_str().unwrap();
    assert!(
        message
            .ends_with("(2 repeats of this alert were suppressed within the 500ms dedup window.)"),
        "{message}"
    );
    let entry = outbox.entry(last);
    assert_eq!(entry.state, DeliveryState::Sent);
    let body: Alert = serde_json::from_value(accepted[2].json.clone()).unwrap();
    assert_eq!(body.subject, down.subject);
}
