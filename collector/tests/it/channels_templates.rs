//! Per-channel message templates: a `template` changes the text a destination receives,
//! values are escaped for the channel's markup (a title `<b>&` stays text in Telegram's HTML
//! and Slack's mrkdwn, and reaches a plain-text channel as written), and a broken template
//! stops `watchpost serve` at config load with the line.

use crate::alert_support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use alert_support::{
    Fake, MemoryOutbox, Smtp, fast_options, monitor_alert, ok_json, reserve_port, run, status,
    wait_for,
};
use serde_json::json;
use watchpost_collector::alert::format::{html_escape, slack_escape};
use watchpost_collector::alert::{Channel, DeliveryState, http_client};
use watchpost_collector::config::{self, ChannelKind, Secret};

const LONG: Duration = Duration::from_secs(15);

/// One template for every channel kind: what differs is only the escaping.
const TEMPLATE: &str = "🚨 <b>{{ alert.title }}</b> ({{ alert.monitor.slug }}, {{ alert.kind }})
{{ alert.message }}
<a href=\"{{ alert.url }}\">open</a>";

fn templated(name: &str, kind: ChannelKind) -> Channel {
    let options = fast_options();
    let client = http_client(&options.channels).expect("client");
    let config = config::Channel {
        name: name.to_owned(),
        kind,
        template: Some(TEMPLATE.to_owned()),
    };
    Channel::from_config(&config, &client, &options.channels).expect("channel")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_changes_the_text_each_fake_receives_escaped_for_its_markup() {
    let telegram =
        Fake::start(|_, _| ok_json(&json!({"ok": true, "result": {"message_id": 1}}))).await;
    let slack = Fake::start(|_, _| status(200, "ok")).await;
    let ntfy = Fake::start(|_, _| ok_json(&json!({"id": "x"}))).await;
    let channels = vec![
        templated(
            "tg",
            ChannelKind::Telegram {
                bot_token: Secret::new("1:T"),
                chat_id: "42".to_owned(),
                api_url: telegram.url.clone(),
            },
        ),
        templated(
            "slack",
            ChannelKind::Slack {
                url: Secret::new(format!("{}/hook", slack.url)),
            },
        ),
        templated(
            "ntfy",
            ChannelKind::Ntfy {
                url: Secret::new(format!("{}/alerts", ntfy.url)),
                token: None,
                priority: None,
            },
        ),
    ];
    let mut alert = monitor_alert("nightly-backup", false);
    alert.title = "<b>& co".to_owned();
    let outbox = Arc::new(MemoryOutbox::default());
    for name in ["tg", "slack", "ntfy"] {
        outbox.push(name, "rule", &alert);
    }
    let dispatcher = run(&outbox, channels, fast_options());
    wait_for("every delivery settled", LONG, || outbox.drained()).await;
    dispatcher.stop().await;
    assert!(
        outbox
            .entries()
            .iter()
            .all(|e| e.state == DeliveryState::Sent)
    );

    let url = &alert.url;
    let text = |title: &str, message: &str| {
        format!(
            "🚨 <b>{title}</b> (nightly-backup, monitor.failed)\n{message}\n<a href=\"{url}\">open</a>"
        )
    };
    let tg = &telegram.seen()[0].json;
    assert_eq!(
        tg["text"],
        text("&lt;b&gt;&amp; co", &html_escape(&alert.message)),
        "HTML-escaped values in the template's own markup"
    );
    assert_eq!(tg["parse_mode"], "HTML");
    assert_eq!(
        slack.seen()[0].json["text"],
        text("&lt;b&gt;&amp; co", &slack_escape(&alert.message)),
        "Slack escapes & < > as well"
    );
    assert_eq!(
        ntfy.seen()[0].json["message"],
        text("<b>& co", &alert.message),
        "plain text is not escaped"
    );
}

#[test]
fn a_broken_template_stops_the_start_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("watchpost.toml");
    std::fs::write(
        &config,
        r#"[[channels]]
name = "ops"
type = "telegram"
bot_token = "123:abc"
chat_id = 42
template = """
<b>{{ alert.title }}</b>
{% if alert.message %}{{ alert.message }{% endif %}
"""
"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .expect("run watchpost");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("channels[0].template: the template does not work: syntax error"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(line 2)"),
        "the template's second line: {stderr}"
    );
    assert!(
        !stderr.contains("123:abc"),
        "no secret in the message: {stderr}"
    );
    assert!(!data_dir.exists(), "nothing was created: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_template_renders_the_html_part_escaped_and_keeps_the_plain_part() {
    let addr = reserve_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let smtp_dir = dir.path().to_owned();
    let smtp = tokio::task::spawn_blocking(move || Smtp::start(addr, &smtp_dir))
        .await
        .unwrap();
    let mail = templated(
        "mail",
        ChannelKind::Email {
            smtp_url: Secret::new(format!("smtp://{addr}")),
            username: Some(Secret::new("user")),
            password: Some(Secret::new("secret")),
            from: "Watchpost <alerts@example.com>".to_owned(),
            to: vec!["oncall@example.com".to_owned()],
        },
    );
    let mut alert = monitor_alert("nightly-backup", false);
    alert.title = "<b>& co".to_owned();
    let outbox = Arc::new(MemoryOutbox::default());
    outbox.push("mail", "rule", &alert);
    let dispatcher = run(&outbox, vec![mail], fast_options());
    wait_for("the email", Duration::from_secs(30), || outbox.drained()).await;
    dispatcher.stop().await;
    assert_eq!(outbox.entry(1).state, DeliveryState::Sent);

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let parts = messages[0]["parts"].as_array().unwrap();
    // SMTP carries lines ending in CRLF.
    let html = parts[1]["content"].as_str().unwrap().replace("\r\n", "\n");
    assert!(
        html.starts_with("🚨 <b>&lt;b&gt;&amp; co</b> (nightly-backup, monitor.failed)\n"),
        "the template, HTML-escaped: {html}"
    );
    let plain = parts[0]["content"].as_str().unwrap().replace("\r\n", "\n");
    assert!(
        plain.starts_with("<b>& co\n"),
        "the built-in plain text: {plain}"
    );
}
