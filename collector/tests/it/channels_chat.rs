//! The chat channels — Discord, Microsoft Teams (Workflows), Google Chat — through the real
//! dispatcher against loopback fakes that check each provider's documented body and limits:
//! long text is cut within them, a `429` waits the time the provider asks, and a webhook that
//! is gone fails the delivery after one try.

use crate::alert_support;

use std::sync::Arc;
use std::time::Duration;

use alert_support::{
    Answer, Fake, MemoryOutbox, Seen, channel, fast_options, monitor_alert, probe_alert, run,
    status, wait_for,
};
use axum::http::StatusCode;
use serde_json::{Value, json};
use watchpost_collector::alert::{
    DISCORD_DESCRIPTION_MAX, DISCORD_TITLE_MAX, DISCORD_TOTAL_MAX, DeliveryState, GOOGLE_CHAT_MAX,
    TEAMS_MAX_BYTES,
};
use watchpost_collector::config::{ChannelKind, Secret};
use watchpost_collector::engine::alerting::Alert;

const LONG: Duration = Duration::from_secs(15);

/// A `monitor.failed` alert whose title and message are far beyond every provider's limit.
fn long_alert() -> Alert {
    let mut alert = monitor_alert("nightly-backup", false);
    alert.title = format!("@everyone <b>&</b> {}", "title ".repeat(200));
    alert.message = format!("{}\nend", "é message \"quoted\" ".repeat(3000));
    alert
}

/// Delivers `alerts` to one channel of `kind` and waits until none is pending.
async fn deliver(kind: ChannelKind, alerts: &[Alert]) -> Arc<MemoryOutbox> {
    let outbox = Arc::new(MemoryOutbox::default());
    for alert in alerts {
        outbox.push("c", "rule", alert);
    }
    let options = fast_options();
    let built = channel("c", kind, &options);
    let shown = format!("{built:?}");
    assert!(
        !shown.contains("hook_secret"),
        "Debug shows the URL: {shown}"
    );
    let dispatcher = run(&outbox, vec![built], options);
    wait_for("every delivery settled", LONG, || outbox.drained()).await;
    dispatcher.stop().await;
    outbox
}

fn all_sent(outbox: &MemoryOutbox) {
    for entry in outbox.entries() {
        assert_eq!(entry.state, DeliveryState::Sent, "{entry:?}");
    }
}

fn chars(value: &Value) -> usize {
    value.as_str().map_or(0, |s| s.chars().count())
}

/// Discord's documented embed limits; `400` with its error shape when broken.
fn discord_answer(seen: &Seen) -> Answer {
    let embeds = seen.json["embeds"].as_array().cloned().unwrap_or_default();
    let total: usize = embeds
        .iter()
        .map(|e| chars(&e["title"]) + chars(&e["description"]) + chars(&e["footer"]["text"]))
        .sum();
    let valid = !embeds.is_empty()
        && embeds.len() <= 10
        && total <= DISCORD_TOTAL_MAX
        && embeds.iter().all(|e| {
            chars(&e["title"]) <= DISCORD_TITLE_MAX
                && chars(&e["description"]) <= DISCORD_DESCRIPTION_MAX
                && e["color"].is_u64()
        });
    if valid {
        (
            StatusCode::OK,
            Vec::new(),
            json!({"id": "1", "type": 0}).to_string(),
        )
    } else {
        status(400, r#"{"message": "Invalid Form Body", "code": 50035}"#)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_sends_one_coloured_embed_within_the_limits_and_waits_out_a_429() {
    let fake = Fake::start(|seen, n| {
        if n == 0 {
            (
                StatusCode::TOO_MANY_REQUESTS,
                vec![("retry-after", "1".to_owned())],
                json!({"message": "You are being rate limited.", "retry_after": 1.3, "global": false})
                    .to_string(),
            )
        } else {
            discord_answer(seen)
        }
    })
    .await;
    let alerts = [long_alert(), probe_alert("api-health", false)];
    let kind = ChannelKind::Discord {
        url: Secret::new(format!("{}/api/webhooks/1/hook_secret", fake.url)),
        wait: true,
    };
    let outbox = deliver(kind, &alerts).await;

    all_sent(&outbox);
    assert_eq!(outbox.entry(1).attempts, 2);
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    let gap = seen[1].at.duration_since(seen[0].at);
    assert!(
        gap >= Duration::from_millis(1250),
        "the body's retry_after 1.3 s, waited {gap:?}"
    );
    for request in &seen {
        assert_eq!(request.path, "/api/webhooks/1/hook_secret?wait=true");
        assert_eq!(
            request.json["allowed_mentions"],
            json!({"parse": []}),
            "no @everyone"
        );
    }
    let embed = &seen[1].json["embeds"][0];
    assert_eq!(seen[1].json["embeds"].as_array().unwrap().len(), 1);
    assert_eq!(
        chars(&embed["title"]),
        DISCORD_TITLE_MAX,
        "cut at the limit"
    );
    assert!(
        embed["title"]
            .as_str()
            .unwrap()
            .starts_with("🔴 @everyone <b>&</b> title")
    );
    let total =
        chars(&embed["title"]) + chars(&embed["description"]) + chars(&embed["footer"]["text"]);
    assert_eq!(
        total,
        DISCORD_TOTAL_MAX
            .min(DISCORD_TITLE_MAX + DISCORD_DESCRIPTION_MAX + chars(&embed["footer"]["text"]))
    );
    assert!(embed["description"].as_str().unwrap().ends_with('…'));
    assert_eq!(embed["color"], 0xE0_1E_5A);
    assert_eq!(embed["url"], alerts[0].url);
    assert_eq!(
        embed["footer"]["text"],
        "monitor.failed · project 1 · production"
    );
    let up = &seen[2].json["embeds"][0];
    assert_eq!(up["color"], 0x2E_B6_7D);
    assert_eq!(up["title"], "🟢 Probe api-health is up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_unknown_webhook_fails_at_once() {
    let fake =
        Fake::start(|_, _| status(404, r#"{"message": "Unknown Webhook", "code": 10015}"#)).await;
    let kind = ChannelKind::Discord {
        url: Secret::new(format!("{}/api/webhooks/1/hook_secret", fake.url)),
        wait: false,
    };
    let outbox = deliver(kind, &[monitor_alert("db", false)]).await;
    let entry = outbox.entry(1);
    assert_eq!((entry.state, entry.attempts), (DeliveryState::Failed, 1));
    assert!(entry.last_error.unwrap().contains("Unknown Webhook"));
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path, "/api/webhooks/1/hook_secret",
        "no wait=true unless asked"
    );
}

/// The Workflows trigger's checks: the message envelope, an Adaptive Card 1.4+, 28 KB.
fn teams_answer(seen: &Seen) -> Answer {
    let body = &seen.json;
    let attachment = &body["attachments"][0];
    let card = &attachment["content"];
    let version: f64 = card["version"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let valid = body["type"] == "message"
        && body["attachments"].as_array().is_some_and(|a| a.len() == 1)
        && attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        && card["type"] == "AdaptiveCard"
        && version >= 1.4
        && card["body"].as_array().is_some_and(|b| !b.is_empty())
        && seen.body.len() <= TEAMS_MAX_BYTES;
    if valid {
        (StatusCode::ACCEPTED, Vec::new(), String::new())
    } else {
        status(
            400,
            r#"{"error":{"code":"InvalidRequestContent","message":"The request content is not valid"}}"#,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_gets_an_adaptive_card_under_28_kb_and_waits_out_a_429() {
    let fake = Fake::start(|seen, n| {
        if n == 0 {
            (
                StatusCode::TOO_MANY_REQUESTS,
                vec![("retry-after", "1".to_owned())],
                String::new(),
            )
        } else {
            teams_answer(seen)
        }
    })
    .await;
    let alerts = [long_alert(), monitor_alert("nightly-backup", true)];
    let kind = ChannelKind::Teams {
        url: Secret::new(format!(
            "{}/workflows/x/triggers/manual/paths/invoke?sig=hook_secret",
            fake.url
        )),
    };
    let outbox = deliver(kind, &alerts).await;

    all_sent(&outbox);
    assert_eq!(outbox.entry(1).attempts, 2);
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_millis(950));
    let big = &seen[1];
    assert!(
        big.body.len() <= TEAMS_MAX_BYTES,
        "{} bytes",
        big.body.len()
    );
    assert!(
        big.body.len() > TEAMS_MAX_BYTES - 1024,
        "cut near the limit, not far below"
    );
    let card = &big.json["attachments"][0]["content"];
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0]["color"], "Attention");
    assert!(card["body"][1]["text"].as_str().unwrap().ends_with('…'));
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(card["actions"][0]["url"], alerts[0].url);
    let facts = &card["body"][2]["facts"];
    assert_eq!(
        facts[0],
        json!({"title": "Kind", "value": "monitor.failed"})
    );
    let recovered = &seen[2].json["attachments"][0]["content"];
    assert_eq!(recovered["body"][0]["color"], "Good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_chat_gets_text_within_4096_characters_and_a_gone_webhook_fails_at_once() {
    let fake = Fake::start(|seen, n| {
        let text = chars(&seen.json["text"]);
        match n {
            0 => (
                StatusCode::TOO_MANY_REQUESTS,
                vec![("retry-after", "1".to_owned())],
                json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}).to_string(),
            ),
            _ if seen.path.contains("deleted") => {
                status(404, r#"{"error": {"code": 404, "status": "NOT_FOUND"}}"#)
            }
            _ if text == 0 || text > GOOGLE_CHAT_MAX => status(
                400,
                r#"{"error": {"code": 400, "status": "INVALID_ARGUMENT"}}"#,
            ),
            _ => (
                StatusCode::OK,
                Vec::new(),
                json!({"name": "spaces/S/messages/M"}).to_string(),
            ),
        }
    })
    .await;
    let alerts = [long_alert(), probe_alert("api-health", true)];
    let kind = ChannelKind::GoogleChat {
        url: Secret::new(format!(
            "{}/v1/spaces/S/messages?key=k&token=hook_secret",
            fake.url
        )),
    };
    let outbox = deliver(kind, &alerts).await;

    all_sent(&outbox);
    assert_eq!(outbox.entry(1).attempts, 2);
    let seen = fake.seen();
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_millis(950));
    let text = seen[1].json["text"].as_str().unwrap();
    assert_eq!(text.chars().count(), GOOGLE_CHAT_MAX, "cut at the limit");
    assert!(
        text.starts_with("🔴 *@everyone <\u{200B}b>&<\u{200B}/b> title"),
        "a sender's angle brackets are defused: {text}"
    );
    let probe = seen[2].json["text"].as_str().unwrap();
    assert!(
        probe.starts_with("🔴 *Probe api-health is down*\n"),
        "{probe}"
    );
    assert!(
        probe.ends_with("<http://watchpost.example:8470/probes/api-health|Open in Watchpost>"),
        "{probe}"
    );

    let kind = ChannelKind::GoogleChat {
        url: Secret::new(format!(
            "{}/v1/spaces/deleted/messages?key=k&token=hook_secret",
            fake.url
        )),
    };
    let outbox = deliver(kind, &[monitor_alert("db", false)]).await;
    let entry = outbox.entry(1);
    assert_eq!((entry.state, entry.attempts), (DeliveryState::Failed, 1));
    assert!(entry.last_error.unwrap().contains("404"));
}
