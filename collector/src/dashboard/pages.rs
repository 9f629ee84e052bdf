//! The dashboard's HTML, written with maud: checked at compile time and escaped by default.
//! Every string that came from a user or an SDK (slugs, environments, logs, issue titles) is
//! interpolated as text; the only pre-escaped content is the constant stylesheet. Pure functions
//! from data to markup: no store, no clock (the handler passes `now`).

use std::sync::LazyLock;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

use watchpost_protocol::{Event, Exception, Frame, LogEntry as EventLog, Message};

use super::data::{Activity, DeliveryRow, IssueDetail, ProbeCheck, ProbeRow};
use super::session::Viewer;
use crate::engine::probes::ProbeStatus;
use crate::engine::text::{self, percent_encode, rfc3339_millis};
use crate::engine::{
    CheckIn, CheckInStatus, Incident, IncidentKind, IncidentReason, Issue, IssueStatus, MonitorEnv,
    MonitorStatus,
};
use crate::store::{DiskSpace, LogEntry, MonitorCounts, RefusalRecord};
use crate::words;

/// Check-ins drawn in a timeline.
pub(crate) const TIMELINE: usize = 50;

/// Small, responsive, no external assets. Colors are variables so dark mode is one block.
const CSS: &str = r#"
:root{--bg:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--card:#f6f8fa;--link:#0969da;
--ok:#1a7f37;--err:#cf222e;--warn:#9a6700;--off:#6e7781}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;
--line:#3d444d;--card:#151b23;--link:#4493f8;--ok:#3fb950;--err:#f85149;--warn:#d29922;
--off:#9198a1}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:var(--bg);color:var(--fg)}
a{color:var(--link)}
header{border-bottom:1px solid var(--line);background:var(--card)}
nav{max-width:1100px;margin:0 auto;padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:.3rem 1rem;
align-items:center}
nav .brand{font-weight:700;color:var(--fg);text-decoration:none;margin-right:auto}
nav form{margin:0}
main{max-width:1100px;margin:0 auto;padding:1rem}
h1{font-size:1.4rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:1.6rem 0 .6rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:.6rem}
.card{border:1px solid var(--line);border-radius:8px;padding:.6rem .8rem;background:var(--card)}
.card b{display:block;font-size:1.6rem;line-height:1.2}
.card.bad b{color:var(--err)}.card.good b{color:var(--ok)}
.warning{border:1px solid var(--err);border-radius:8px;padding:.6rem .8rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.8rem;color:var(--muted);font-weight:600;white-space:nowrap}
.pill{display:inline-block;border-radius:999px;padding:0 .5rem;font-size:.8rem;font-weight:600;
border:1px solid currentColor;white-space:nowrap}
.ok,.sent,.up{color:var(--ok)}.error,.failed,.missed,.timeout{color:var(--err)}
.active,.in_progress,.pending,.unresolved{color:var(--warn)}
.disabled,.muted,.unknown,.resolved,.ignored,.suppressed{color:var(--off)}
.dim{color:var(--muted);font-size:.85rem}
.notice{border:1px solid var(--ok);border-radius:8px;padding:.5rem .8rem;margin-bottom:1rem}
.problem{border:1px solid var(--err);border-radius:8px;padding:.5rem .8rem;margin-bottom:1rem}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin:.6rem 0}
.actions form{margin:0}
button{font:inherit;padding:.35rem .8rem;border-radius:6px;border:1px solid var(--line);
background:var(--card);color:var(--fg);cursor:pointer}
button.danger{border-color:var(--err);color:var(--err)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dt{color:var(--muted)}dd{margin:0}
pre{white-space:pre-wrap;word-break:break-word;background:var(--card);padding:.5rem;
border-radius:6px;margin:.3rem 0;max-height:20rem;overflow:auto}
code{font-size:.85rem;word-break:break-all}
details summary{cursor:pointer}
.env{border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem;margin:1rem 0}
.login{max-width:24rem;margin:4rem auto}
.login input{width:100%;font:inherit;padding:.5rem;margin:.4rem 0 .8rem;border-radius:6px;
border:1px solid var(--line);background:var(--bg);color:var(--fg)}
svg.timeline{display:block;max-width:100%;height:auto;margin:.3rem 0 .6rem}
time{white-space:nowrap}
svg.spark{display:block;max-width:100%;height:auto}
.exc{border:1px solid var(--line);border-radius:8px;padding:.6rem .8rem;margin:.8rem 0}
.frames{list-style:none;padding:0;margin:.4rem 0 0}
.frames li{padding:.2rem .5rem;border-left:3px solid transparent;font-size:.9rem}
.frames li.app{border-left-color:var(--link);background:var(--card)}
.frames li.app b{color:var(--link)}
@media (max-width:640px){.wide{display:none}main{padding:.6rem}}
"#;

/// The `Content-Security-Policy` of every dashboard response: no script at all, only the
/// stylesheet above (by hash), images from this origin, forms posting back here.
pub(crate) static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    )
});

/// A monitor environment with its newest check-ins.
#[derive(Debug)]
pub(crate) struct MonitorRow {
    pub(crate) monitor: MonitorEnv,
    /// Newest first, at most [`TIMELINE`].
    pub(crate) recent: Vec<CheckIn>,
}

/// What the overview shows.
#[derive(Debug)]
pub(crate) struct Overview {
    /// Monitor environments by status, from the store's counters.
    pub(crate) counts: MonitorCounts,
    /// Failing monitors (those with an open incident), at most a page of them.
    pub(crate) failing: Vec<MonitorRow>,
    /// The newest open incidents, and whether there are more.
    pub(crate) open_incidents: Vec<Incident>,
    pub(crate) more_open_incidents: bool,
    /// The most recently seen unresolved issues, and whether there are more.
    pub(crate) unresolved: (Vec<Issue>, bool),
    pub(crate) probes: Option<Vec<ProbeRow>>,
    pub(crate) deliveries: Vec<DeliveryRow>,
    pub(crate) failed_deliveries: usize,
    /// The store's size on disk (sled's count: its log and blob files).
    pub(crate) store_bytes: u64,
    /// The data dir's file system, if it says.
    pub(crate) disk: Option<DiskSpace>,
}

/// Links to the pages either side of a paged list.
#[derive(Debug)]
pub(crate) struct Pager {
    pub(crate) prev: Option<String>,
    pub(crate) next: Option<String>,
}

/// One environment on a monitor's page.
#[derive(Debug)]
pub(crate) struct EnvDetail {
    pub(crate) monitor: MonitorEnv,
    /// Newest first.
    pub(crate) checkins: Vec<CheckIn>,
    /// Newest first.
    pub(crate) logs: Vec<LogEntry>,
    /// Newest first.
    pub(crate) incidents: Vec<Incident>,
}

/// A monitor's page.
#[derive(Debug)]
pub(crate) struct MonitorPage {
    pub(crate) project: u64,
    pub(crate) slug: String,
    /// A page of its environments.
    pub(crate) envs: Vec<EnvDetail>,
    pub(crate) pager: Pager,
    /// Absolute badge URLs (with the key), SVG and JSON.
    pub(crate) badge_svg: String,
    pub(crate) badge_json: String,
    /// What the last action did, from a fixed set of sentences.
    pub(crate) notice: Option<&'static str>,
}

/// The frame around every page.
pub(crate) fn layout(title: &str, viewer: Option<&Viewer>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · Watchpost" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    nav {
                        a.brand href="/" { "Watchpost" }
                        @if let Some(viewer) = viewer {
                            a href="/" { "Overview" }
                            a href="/monitors" { "Monitors" }
                            a href="/incidents" { "Incidents" }
                            a href="/issues" { "Issues" }
                            @if viewer.probes { a href="/probes" { "Probes" } }
                            a href="/alerts" { "Alerts" }
                            a href="/refusals" { "Refusals" }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub(crate) fn login(problem: Option<&str>, next: &str) -> Markup {
    layout(
        "Log in",
        None,
        &html! {
            div.login {
                h1 { "Log in" }
                @if let Some(problem) = problem { p.problem { (problem) } }
                form method="post" action="/login" {
                    label for="token" { "Admin token" }
                    input #token type="password" name="token" autocomplete="current-password"
                        required autofocus;
                    input type="hidden" name="next" value=(next);
                    button type="submit" { "Log in" }
                }
                p.dim {
                    "The token is printed when the collector starts and kept in "
                    code { "<data-dir>/admin_token" } "."
                }
            }
        },
    )
}

pub(crate) fn error(viewer: Option<&Viewer>, title: &str, message: &str) -> Markup {
    layout(
        title,
        viewer,
        &html! {
            h1 { (title) }
            p.problem { (message) }
            p { a href="/" { "Back to the overview" } }
        },
    )
}

pub(crate) fn overview(viewer: &Viewer, o: &Overview, now: DateTime<Utc>) -> Markup {
    let count = |status: MonitorStatus| usize::try_from(o.counts.of(status)).unwrap_or(usize::MAX);
    let failing: Vec<&MonitorRow> = o.failing.iter().collect();
    let (unresolved, more_unresolved) = &o.unresolved;
    let unresolved: Vec<(&Issue, Option<&Activity>)> =
        unresolved.iter().map(|i| (i, None)).collect();
    let probes_down = o
        .probes
        .as_ref()
        .map(|p| p.iter().filter(|p| p.status == ProbeStatus::Down).count());
    layout(
        "Overview",
        Some(viewer),
        &html! {
            h1 { "Overview" }
            div.cards {
                (card("failing", count(MonitorStatus::Error), true))
                (card("ok", count(MonitorStatus::Ok), false))
                (card("waiting for a first check-in", count(MonitorStatus::Active), false))
                (card("disabled", count(MonitorStatus::Disabled), false))
                (card_at_least("open incidents", o.open_incidents.len(), o.more_open_incidents))
                (card_at_least("unresolved issues", unresolved.len(), *more_unresolved))
                @if let Some(down) = probes_down { (card("probes down", down, true)) }
                (card("failed alert deliveries", o.failed_deliveries, true))
                (size_card("store on disk", o.store_bytes, false))
                @if let Some(disk) = o.disk {
                    (size_card("free on the data dir's disk", disk.available, disk.is_low(o.store_bytes)))
                }
            }
            @if let Some(disk) = o.disk.filter(|d| d.is_low(o.store_bytes)) {
                p.warning {
                    "The data dir's disk is running out of space: "
                    (text::bytes(disk.available)) " free of " (text::bytes(disk.total))
                    " (" (format!("{:.1}", disk.free_percent())) " %), with the store at "
                    (text::bytes(o.store_bytes)) ". Once less than 2 MiB is free the collector "
                    "refuses check-ins (503) until space returns. Free space on that disk or move "
                    "the data dir to a larger one; "
                    code { "watchpost store stats" } " shows where the store's bytes go."
                }
            }
            h2 { "Failing monitors" }
            @if failing.is_empty() {
                p.dim { "None. " a href="/monitors" { "All monitors" } }
            } @else {
                (monitor_table(&failing, now))
                @if count(MonitorStatus::Error) > failing.len() {
                    p.dim {
                        "The first " (failing.len()) " of " (count(MonitorStatus::Error))
                        " failing; each has an open incident (below)."
                    }
                }
            }
            h2 { "Open incidents" }
            (incident_table(&o.open_incidents, Some(&viewer.csrf), now))
            @if o.more_open_incidents {
                p.dim { "The newest " (o.open_incidents.len()) ". " a href="/incidents" { "All incidents" } }
            }
            h2 { "Unresolved issues" }
            (issue_table(&unresolved, None, now))
            @if *more_unresolved {
                p.dim {
                    "The " (unresolved.len()) " seen most recently. " a href="/issues" { "All issues" }
                }
            }
            @if let Some(probes) = &o.probes {
                h2 { "Probes" }
                (probe_table(probes, now))
                p.dim { a href="/probes" { "All probes" } }
            }
            h2 { "Recent alert deliveries" }
            p.dim { a href="/alerts" { "All alert deliveries" } }
            @if o.deliveries.is_empty() {
                p.dim { "None yet." }
            } @else {
                (delivery_table(&o.deliveries, now))
            }
        },
    )
}

fn card(label: &str, n: usize, alarming: bool) -> Markup {
    let class = match (n, alarming) {
        (0, _) => "card",
        (_, true) => "card bad",
        (_, false) => "card good",
    };
    html! { div class=(class) { b { (n) } (label) } }
}

/// A card showing a size; `alarming` colours it.
fn size_card(label: &str, bytes: u64, alarming: bool) -> Markup {
    let class = if alarming { "card bad" } else { "card" };
    html! { div class=(class) { b { (text::bytes(bytes)) } (label) } }
}

/// An alarming card for a count read a page at a time: `n+` when there are more than `n`.
fn card_at_least(label: &str, n: usize, more: bool) -> Markup {
    let class = if n == 0 { "card" } else { "card bad" };
    html! { div class=(class) { b { (n) @if more { "+" } } (label) } }
}

pub(crate) fn monitors(
    viewer: &Viewer,
    rows: &[MonitorRow],
    total: u64,
    pager: &Pager,
    now: DateTime<Utc>,
) -> Markup {
    let rows: Vec<&MonitorRow> = rows.iter().collect();
    layout(
        "Monitors",
        Some(viewer),
        &html! {
            h1 { "Monitors" }
            @if total > 0 {
                p.dim { (total) " monitor environments, " (rows.len()) " on this page." }
            }
            @if rows.is_empty() && pager.prev.is_none() {
                p {
                    "No monitors yet. A check-in with a "
                    code { "monitor_config" }
                    " creates one, as does "
                    code { "[[monitors]]" }
                    " in the config file."
                }
            } @else {
                (monitor_table(&rows, now))
            }
            (pager_links(pager))
        },
    )
}

/// "Previous" and "Next" links, where there is such a page.
fn pager_links(pager: &Pager) -> Markup {
    html! {
        @if pager.prev.is_some() || pager.next.is_some() {
            nav.pager aria-label="pages" {
                @if let Some(prev) = &pager.prev { a rel="prev" href=(prev) { "← Previous" } }
                @if let Some(next) = &pager.next { a rel="next" href=(next) { "Next →" } }
            }
        }
    }
}

fn monitor_table(rows: &[&MonitorRow], now: DateTime<Utc>) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr {
                    th { "Monitor" } th { "Status" } th.wide { "Schedule" }
                    th { "Last check-in" } th.wide { "Next" } th { "Last " (TIMELINE) }
                } }
                tbody {
                    @for row in rows {
                        @let m = &row.monitor;
                        tr {
                            td {
                                a href=(monitor_url(m.key.project, &m.key.slug)) { (m.key.slug) }
                                br;
                                span.dim { (m.key.environment) " · project " (m.key.project) }
                            }
                            td { (status_pills(m)) }
                            td.wide { (words::schedule(&m.config.schedule, &m.config.timezone)) }
                            td { (when(m.last_checkin, now)) }
                            td.wide { (when(m.next_checkin, now)) }
                            td { (timeline(&row.recent)) }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn monitor(viewer: &Viewer, page: &MonitorPage, now: DateTime<Utc>) -> Markup {
    let action_url = monitor_url(page.project, &page.slug);
    layout(
        &page.slug,
        Some(viewer),
        &html! {
            h1 { (page.slug) span.dim { " · project " (page.project) } }
            @if let Some(notice) = page.notice { p.notice { (notice) } }
            @for env in &page.envs {
                @let m = &env.monitor;
                section.env {
                    h2 { (m.key.environment) " " (status_pills(m)) }
                    div.actions {
                        form method="post" action=(action_url) {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            input type="hidden" name="environment" value=(m.key.environment);
                            @if m.muted {
                                button type="submit" name="action" value="unmute" { "Unmute" }
                            } @else {
                                button type="submit" name="action" value="mute" { "Mute" }
                            }
                        }
                        form method="post" action=(action_url) {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            input type="hidden" name="environment" value=(m.key.environment);
                            @if let Some(until) = m.snoozed_until.filter(|u| *u > now) {
                                span.dim { "snoozed until " (at(until, now)) " " }
                                button type="submit" name="action" value="unsnooze" { "Unsnooze" }
                            } @else {
                                button type="submit" name="action" value="snooze1h" { "Snooze 1 h" }
                            }
                        }
                        form method="post" action=(action_url) {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            input type="hidden" name="environment" value=(m.key.environment);
                            @if m.disabled {
                                button type="submit" name="action" value="enable" { "Enable" }
                            } @else {
                                button.danger type="submit" name="action" value="disable" {
                                    "Disable"
                                }
                            }
                        }
                    }
                    (timeline(&env.checkins))
                    dl {
                        dt { "Schedule" }
                        dd {
                            (words::schedule(&m.config.schedule, &m.config.timezone))
                            " " span.dim { code { (m.config.schedule) } }
                        }
                        dt { "Check-in margin" } dd { (text::span(m.config.checkin_margin)) }
                        dt { "Max runtime" } dd { (text::span(m.config.max_runtime)) }
                        dt { "Incident after" }
                        dd { (m.config.failure_issue_threshold) " failed check-in(s)" }
                        dt { "Recovers after" }
                        dd { (m.config.recovery_threshold) " ok check-in(s)" }
                        dt { "Last check-in" } dd { (when(m.last_checkin, now)) }
                        dt { "Last ok" } dd { (when(m.last_ok, now)) }
                        dt { "Next check-in" } dd { (when(m.next_checkin, now)) }
                        dt { "Missed after" } dd { (when(m.next_checkin_latest, now)) }
                    }
                    h2 { "Check-ins" }
                    (checkin_table(&env.checkins, now))
                    @if !env.logs.is_empty() {
                        h2 { "Ping logs" }
                        div.scroll { table {
                            thead { tr { th { "Received" } th { "Log" } } }
                            tbody { @for log in &env.logs {
                                tr { td { (at(log.received, now)) } td { (log_text(&log.body)) } }
                            } }
                        } }
                    }
                    h2 { "Incidents" }
                    (incident_table(&env.incidents, Some(&viewer.csrf), now))
                }
            }
            (pager_links(&page.pager))
            h2 { "Status badge" }
            p { img src=(page.badge_svg) alt={ (page.slug) " status" }; }
            p.dim {
                "Anyone with these URLs sees this monitor's status (nothing else). Delete "
                code { "<data-dir>/badge_secret" } " and restart to revoke every badge URL."
            }
            dl {
                dt { "SVG" } dd { code { (page.badge_svg) } }
                dt { "shields.io" } dd { code { (page.badge_json) } }
            }
        },
    )
}

fn checkin_table(checkins: &[CheckIn], now: DateTime<Utc>) -> Markup {
    html! {
        @if checkins.is_empty() {
            p.dim { "No check-ins yet." }
        } @else {
            div.scroll { table {
                thead { tr {
                    th { "Status" } th { "Started" } th { "Duration" } th.wide { "Expected" }
                    th { "Log" }
                } }
                tbody { @for c in checkins {
                    tr {
                        td { span class={ "pill " (c.status.as_str()) } { (c.status.as_str()) } }
                        td { (at(c.date_added, now)) }
                        td { @if let Some(ms) = c.duration_ms { (text::duration_ms(ms)) } }
                        td.wide { (when(c.expected_time, now)) }
                        td { @if let Some(log) = &c.log { (log_text(log)) } }
                    }
                } }
            } }
        }
    }
}

/// A log as text: its first line as the summary, the whole of it on demand (no script needed).
fn log_text(log: &str) -> Markup {
    const SUMMARY: usize = 80;
    let first = log.lines().next().unwrap_or_default();
    let mut summary: String = first.chars().take(SUMMARY).collect();
    if summary.len() < first.len() || first.len() < log.trim_end().len() {
        summary.push_str(" …");
    }
    html! {
        details {
            summary { code { (summary) } }
            pre { (log) }
        }
    }
}

/// Incidents, with who acknowledged each; with `csrf`, an acknowledge form on the open monitor
/// incidents nobody acknowledged yet.
fn incident_table(incidents: &[Incident], csrf: Option<&str>, now: DateTime<Utc>) -> Markup {
    html! {
        @if incidents.is_empty() {
            p.dim { "None." }
        } @else {
            div.scroll { table {
                thead { tr {
                    th { "Monitor" } th { "Reason" } th { "Opened" } th { "Resolved" }
                    th { "Acknowledged" }
                } }
                tbody { @for i in incidents {
                    tr {
                        td {
                            @match i.kind {
                                IncidentKind::Monitor => {
                                    a href=(monitor_url(i.key.project, &i.key.slug)) {
                                        (i.key.slug)
                                    }
                                }
                                IncidentKind::Probe => { "probe " (i.key.slug) }
                            }
                            " " span.dim { (i.key.environment) }
                        }
                        td { (reason(i.reason)) }
                        td { (at(i.opened_at, now)) }
                        td {
                            @match i.resolved_at {
                                Some(resolved) => (at(resolved, now)),
                                None => span.pill.error { "open" },
                            }
                        }
                        td { (acknowledgement(i, csrf, now)) }
                    }
                } }
            } }
        }
    }
}

/// Who acknowledged an incident and when; else, for an open incident (of a monitor or a
/// probe) and a page that may act (`csrf`), the form that acknowledges it.
fn acknowledgement(incident: &Incident, csrf: Option<&str>, now: DateTime<Utc>) -> Markup {
    let actionable = incident.resolved_at.is_none();
    html! {
        @if let Some(ack) = &incident.handling.acknowledged {
            (ack.by) " " span.dim { (at(ack.at, now)) }
        } @else if let (Some(csrf), true) = (csrf, actionable) {
            form method="post" action=(format!("/incidents/{}/ack", incident.id.simple())) {
                input type="hidden" name="csrf" value=(csrf);
                input type="text" name="by" placeholder="your name" required
                    maxlength=(crate::engine::oncall::MAX_ACK_NAME) aria-label="your name";
                " "
                button type="submit" { "Acknowledge" }
            }
        } @else {
            span.dim { "—" }
        }
    }
}

/// The open incidents (on the first page only) and a page of all incidents, newest first.
pub(crate) fn incidents(
    viewer: &Viewer,
    open: Option<&[Incident]>,
    all: &[Incident],
    pager: &Pager,
    now: DateTime<Utc>,
) -> Markup {
    layout(
        "Incidents",
        Some(viewer),
        &html! {
            h1 { "Incidents" }
            @if let Some(open) = open {
                h2 { "Open" }
                (incident_table(open, Some(&viewer.csrf), now))
            }
            h2 { "All, newest first" }
            (incident_table(all, None, now))
            (pager_links(pager))
        },
    )
}

pub(crate) fn issues(
    viewer: &Viewer,
    issues: Option<&[(Issue, Activity)]>,
    pager: &Pager,
    now: DateTime<Utc>,
) -> Markup {
    layout(
        "Issues",
        Some(viewer),
        &html! {
            h1 { "Issues" }
            @match issues {
                None => p.dim { "This collector does not group error events into issues yet." },
                Some(issues) => {
                    @let rows: Vec<(&Issue, Option<&Activity>)> =
                        issues.iter().map(|(i, a)| (i, Some(a))).collect();
                    (issue_table(&rows, Some(&viewer.csrf), now))
                }
            }
            (pager_links(pager))
        },
    )
}

/// Issues, with their activity when given, and resolve / ignore buttons when `csrf` is given.
fn issue_table(
    issues: &[(&Issue, Option<&Activity>)],
    csrf: Option<&str>,
    now: DateTime<Utc>,
) -> Markup {
    let activity = issues.iter().any(|(_, a)| a.is_some());
    html! {
        @if issues.is_empty() {
            p.dim { "None." }
        } @else {
            div.scroll { table {
                thead { tr {
                    th { "Issue" } th { "Status" } th { "Events" }
                    @if activity { th.wide { "Activity" } }
                    th.wide { "First seen" }
                    th { "Last seen" }
                    @if csrf.is_some() { th { "Actions" } }
                } }
                tbody { @for (issue, spark) in issues {
                    tr {
                        td {
                            a href=(issue_url(&issue.id)) { (issue.title) }
                            br;
                            span.dim {
                                (issue.level) " · " (issue.environment)
                                @if let Some(culprit) = &issue.culprit { " · " (culprit) }
                            }
                        }
                        td { span class={ "pill " (issue.status.as_str()) } { (issue.status.as_str()) } }
                        td { (issue.count) }
                        @if activity {
                            td.wide { @if let Some(spark) = spark { (sparkline(spark)) } }
                        }
                        td.wide { (at(issue.first_seen, now)) }
                        td { (at(issue.last_seen, now)) }
                        @if let Some(csrf) = csrf {
                            td { (issue_actions(issue, csrf, false)) }
                        }
                    }
                } }
            } }
        }
    }
}

/// Resolve and ignore, or reopen; `own_page` when the form should come back to the issue.
fn issue_actions(issue: &Issue, csrf: &str, own_page: bool) -> Markup {
    html! {
        form method="post" action=(issue_url(&issue.id)) {
            input type="hidden" name="csrf" value=(csrf);
            @if own_page { input type="hidden" name="from" value="issue"; }
            @if issue.status == IssueStatus::Unresolved {
                button type="submit" name="action" value="resolve" { "Resolve" }
                " "
                button type="submit" name="action" value="ignore" { "Ignore" }
            } @else {
                button type="submit" name="action" value="unresolve" { "Reopen" }
            }
        }
    }
}

/// An issue's page: what it is, its actions, and the newest event's exceptions and frames.
pub(crate) fn issue(viewer: &Viewer, detail: &IssueDetail, now: DateTime<Utc>) -> Markup {
    let issue = &detail.issue;
    layout(
        &issue.title,
        Some(viewer),
        &html! {
            h1 { (issue.title) }
            p {
                span class={ "pill " (issue.status.as_str()) } { (issue.status.as_str()) }
                " " span.dim { (issue.level) " · " (issue.environment) " · project " (issue.project) }
            }
            div.actions { (issue_actions(issue, &viewer.csrf, true)) }
            (sparkline(&detail.activity))
            dl {
                dt { "Culprit" }
                dd { @match &issue.culprit { Some(c) => code { (c) }, None => span.dim { "—" } } }
                dt { "Level" } dd { (issue.level) }
                dt { "Status" } dd { (issue.status.as_str()) }
                dt { "Events" } dd { (issue.count) }
                dt { "First seen" } dd { (at(issue.first_seen, now)) }
                dt { "Last seen" } dd { (at(issue.last_seen, now)) }
            }
            h2 { "Latest event" }
            @match &detail.latest {
                None => p.dim { "No event of this issue is kept." },
                Some(event) => (event_body(event, now)),
            }
        },
    )
}

/// An event's message and exception chain, the most recent exception and frame first.
fn event_body(event: &Event, now: DateTime<Utc>) -> Markup {
    let message = event_message(event);
    let exceptions: Vec<&Exception> = event
        .exception
        .as_ref()
        .map(|list| list.values.iter().rev().collect())
        .unwrap_or_default();
    html! {
        p.dim {
            code { (event.event_id.simple().to_string()) } " · " (at(event.timestamp.0, now))
            @if let Some(release) = &event.release { " · release " code { (release) } }
        }
        @if let Some(message) = message { pre { (message) } }
        @if exceptions.is_empty() && message.is_none() {
            p.dim { "This event has neither a message nor an exception." }
        }
        @for (i, exception) in exceptions.iter().enumerate() {
            @if i == 1 { p.dim { "Caused by (most recent first):" } }
            (exception_block(exception))
        }
    }
}

/// The text of `message` (a string or a log entry), else of `logentry`.
fn event_message(event: &Event) -> Option<&str> {
    fn entry(e: &EventLog) -> Option<&str> {
        e.formatted.as_deref().or(e.message.as_deref())
    }
    let from_message = match &event.message {
        Some(Message::Text(text)) => Some(text.as_str()),
        Some(Message::Entry(e)) => entry(e),
        None => None,
    };
    from_message
        .or_else(|| event.logentry.as_ref().and_then(entry))
        .filter(|text| !text.is_empty())
}

fn exception_block(exception: &Exception) -> Markup {
    let frames: Vec<&Frame> = exception
        .stacktrace
        .as_ref()
        .map(|s| s.frames.iter().rev().collect())
        .unwrap_or_default();
    html! {
        section.exc {
            p {
                b { (exception.ty.as_deref().unwrap_or("Error")) }
                @if let Some(module) = &exception.module { " " span.dim { "in " (module) } }
                @if let Some(mechanism) = &exception.mechanism {
                    " " span.dim {
                        "· " (mechanism.ty)
                        @if mechanism.handled == Some(false) { " (unhandled)" }
                    }
                }
            }
            @if let Some(value) = &exception.value { pre { (value) } }
            @if frames.is_empty() {
                p.dim { "No stack trace." }
            } @else {
                p.dim { (frames.len()) " frame(s), most recent call first" }
                ol.frames { @for frame in frames { (frame_line(frame)) } }
            }
        }
    }
}

fn frame_line(frame: &Frame) -> Markup {
    let in_app = frame.in_app == Some(true);
    let place = frame
        .filename
        .as_deref()
        .or(frame.abs_path.as_deref())
        .or(frame.module.as_deref());
    html! {
        li class=[in_app.then_some("app")] {
            b { (frame.function.as_deref().unwrap_or("?")) }
            @if let Some(module) = &frame.module {
                @if place != Some(module.as_str()) { " " span.dim { "in " (module) } }
            }
            @if let Some(place) = place {
                " " span.dim {
                    "at " code { (place) @if let Some(line) = frame.lineno { ":" (line) } }
                }
            }
            @if in_app { " " span.dim { "(app)" } }
        }
    }
}

/// Events per bucket as bars, oldest on the left; a tooltip gives the span and the counts.
fn sparkline(activity: &Activity) -> Markup {
    const BAR: usize = 3;
    const STEP: usize = 4;
    const HEIGHT: u32 = 20;
    let total: u32 = activity.buckets.iter().sum();
    let max = activity.buckets.iter().copied().max().unwrap_or(0).max(1);
    let width = activity.buckets.len() * STEP;
    let label = format!(
        "{}{total} event(s) since {}, at most {max} per {}, newest on the right",
        if activity.truncated { "at least " } else { "" },
        text::utc(activity.start),
        text::span(std::time::Duration::from_secs(
            u64::try_from(
                (activity.end - activity.start).num_seconds()
                    / i64::try_from(activity.buckets.len().max(1)).unwrap_or(1)
            )
            .unwrap_or(0)
            .max(1)
        )),
    );
    html! {
        svg.spark xmlns="http://www.w3.org/2000/svg" width=(width) height=(HEIGHT)
            viewBox={ "0 0 " (width) " " (HEIGHT) } role="img" aria-label=(label) {
            title { (label) }
            line x1="0" y1=(HEIGHT - 1) x2=(width) y2=(HEIGHT - 1) stroke="#8c959f" stroke-width="1";
            @for (i, &n) in activity.buckets.iter().enumerate() {
                @if n > 0 {
                    @let h = (n * (HEIGHT - 2)).div_ceil(max).max(2);
                    rect x=(i * STEP) y=(HEIGHT - 1 - h) width=(BAR) height=(h) fill="#0969da" {
                        title { (n) }
                    }
                }
            }
        }
    }
}

/// Latency of the recent checks as bars, oldest on the left; failed checks in red.
fn latency_sparkline(checks: &[ProbeCheck]) -> Markup {
    const BAR: usize = 3;
    const STEP: usize = 4;
    const HEIGHT: f64 = 20.0;
    if checks.is_empty() {
        return html! { span.dim { "no checks yet" } };
    }
    let max = checks.iter().map(|c| c.latency_ms).fold(1.0_f64, f64::max);
    let failed = checks.iter().filter(|c| !c.ok).count();
    let width = checks.len() * STEP;
    let label = format!(
        "last {} checks, {failed} failed, slowest {max:.0} ms, newest on the right",
        checks.len()
    );
    html! {
        svg.spark xmlns="http://www.w3.org/2000/svg" width=(width) height=(HEIGHT)
            viewBox={ "0 0 " (width) " " (HEIGHT) } role="img" aria-label=(label) {
            title { (label) }
            @for (i, c) in checks.iter().enumerate() {
                @let h = (c.latency_ms.max(0.0) / max * (HEIGHT - 1.0)).max(2.0);
                rect x=(i * STEP) y=(format!("{:.1}", HEIGHT - h)) width=(BAR)
                    height=(format!("{h:.1}")) fill=(if c.ok { "#2da44e" } else { "#cf222e" }) {
                    title {
                        (text::utc(c.at)) " · " (format!("{:.0} ms", c.latency_ms))
                        @if !c.ok { " · failed" }
                    }
                }
            }
        }
    }
}

/// Every configured probe with its URL, last answer and latency history.
pub(crate) fn probes(viewer: &Viewer, probes: Option<&[ProbeRow]>, now: DateTime<Utc>) -> Markup {
    layout(
        "Probes",
        Some(viewer),
        &html! {
            h1 { "Probes" }
            @match probes {
                None => p {
                    "No probes are configured. Add "
                    code { "[[probes]]" }
                    " to the config file to check a URL periodically."
                },
                Some(probes) => div.scroll { table {
                    thead { tr {
                        th { "Probe" } th { "Status" } th { "Last answer" } th { "Checked" }
                        th { "Latency" }
                        th { "Alerts" }
                    } }
                    tbody { @for p in probes {
                        tr {
                            td { b { (p.name) } br; code.dim { (p.url) } }
                            td { (probe_status(p, now)) }
                            td {
                                @if let Some(code) = p.status_code { "HTTP " (code) }
                                @if let Some(error) = &p.error { br; code { (error) } }
                                @if p.status_code.is_none() && p.error.is_none() {
                                    span.dim { "—" }
                                }
                            }
                            td { (when(p.checked_at, now)) }
                            td {
                                @if let Some(ms) = p.latency_ms { (format!("{ms:.0} ms")) }
                                (latency_sparkline(&p.history))
                            }
                            td { (probe_snooze_form(p, &viewer.csrf, now)) }
                        }
                    } }
                } },
            }
        },
    )
}

/// A page of alert deliveries, newest first.
pub(crate) fn alerts(
    viewer: &Viewer,
    deliveries: &[DeliveryRow],
    pager: &Pager,
    now: DateTime<Utc>,
) -> Markup {
    layout(
        "Alerts",
        Some(viewer),
        &html! {
            h1 { "Alert deliveries" }
            @if deliveries.is_empty() && pager.prev.is_none() {
                p.dim {
                    "None yet. Deliveries appear here once a rule sends an alert to a channel."
                }
            } @else {
                p.dim { "Newest first." }
                (delivery_table(deliveries, now))
            }
            (pager_links(pager))
        },
    )
}

/// What the caps and the upsert policy refused in the last week (at most 100 per project),
/// newest first: the sentence each sender was given, escaped like everything SDKs sent.
pub(crate) fn refusals(viewer: &Viewer, refusals: &[RefusalRecord], now: DateTime<Utc>) -> Markup {
    layout(
        "Refusals",
        Some(viewer),
        &html! {
            h1 { "Refusals" }
            @if refusals.is_empty() {
                p.dim {
                    "None in the last week. Check-ins, events and monitor_config changes refused \
                     by a cap or the upsert policy appear here."
                }
            } @else {
                p.dim { "The last week's, at most 100 per project, newest first." }
                div.scroll { table {
                    thead { tr {
                        th { "When" } th { "Project" } th { "Monitor" } th { "Reason" }
                        th.wide { "What the sender was told" }
                    } }
                    tbody { @for r in refusals {
                        tr {
                            td { (at(r.at, now)) }
                            td { (r.project) }
                            td {
                                @if let Some(slug) = &r.slug { (slug) }
                                @if let Some(env) = &r.environment { br; span.dim { (env) } }
                            }
                            td { code { (r.reason) } }
                            td.wide { (r.message) }
                        }
                    } }
                } }
            }
        },
    )
}

/// Snooze a probe's alerts for an hour, or end the snooze it is in.
fn probe_snooze_form(p: &ProbeRow, csrf: &str, now: DateTime<Utc>) -> Markup {
    html! {
        form method="post" action="/probes" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="name" value=(p.name);
            @if let Some(until) = p.snoozed_until {
                span.dim { "snoozed until " (at(until, now)) " " }
                button type="submit" name="action" value="unsnooze" { "Unsnooze" }
            } @else {
                button type="submit" name="action" value="snooze1h" { "Snooze 1 h" }
            }
        }
    }
}

fn probe_status(p: &ProbeRow, now: DateTime<Utc>) -> Markup {
    html! {
        @match p.status {
            ProbeStatus::Up => span.pill.ok { "up" },
            ProbeStatus::Down => span.pill.error { "down" },
            ProbeStatus::Pending => span.pill.pending { "pending" },
        }
        @if let Some(since) = p.since { " " span.dim { "since " (at(since, now)) } }
    }
}

fn probe_table(probes: &[ProbeRow], now: DateTime<Utc>) -> Markup {
    html! {
        div.scroll { table {
            thead { tr {
                th { "Probe" } th { "Status" } th { "Latency" } th { "Checked" }
                th.wide { "Last error" }
            } }
            tbody { @for p in probes {
                tr {
                    td { (p.name) }
                    td { (probe_status(p, now)) }
                    td { @if let Some(ms) = p.latency_ms { (format!("{ms:.0} ms")) } }
                    td { (when(p.checked_at, now)) }
                    td.wide { @if let Some(error) = &p.error { code { (error) } } }
                }
            } }
        } }
    }
}

fn delivery_table(deliveries: &[DeliveryRow], now: DateTime<Utc>) -> Markup {
    html! {
        div.scroll { table {
            thead { tr {
                th { "Alert" } th { "Channel" } th { "Status" } th { "Attempts" } th { "Last error" }
            } }
            tbody { @for d in deliveries {
                tr {
                    td { (d.title) br; span.dim { (d.kind) " · " (at(d.created, now)) } }
                    td { (d.channel) }
                    td { span class={ "pill " (d.status) } { (d.status) } }
                    td { (d.attempts) }
                    td { @if let Some(error) = &d.last_error { code { (error) } } }
                }
            } }
        } }
    }
}

/// The newest check-ins as colored marks, oldest on the left; each mark has a tooltip.
pub(crate) fn timeline(newest_first: &[CheckIn]) -> Markup {
    const MARK: usize = 6;
    const STEP: usize = 8;
    let marks: Vec<&CheckIn> = newest_first.iter().take(TIMELINE).rev().collect();
    if marks.is_empty() {
        return html! { span.dim { "no check-ins yet" } };
    }
    let width = marks.len() * STEP;
    let failures = marks
        .iter()
        .filter(|c| {
            matches!(
                c.status,
                CheckInStatus::Error | CheckInStatus::Missed | CheckInStatus::Timeout
            )
        })
        .count();
    let label = format!(
        "last {} check-ins, {} failed, newest on the right",
        marks.len(),
        failures
    );
    html! {
        svg.timeline xmlns="http://www.w3.org/2000/svg" width=(width) height="22"
            viewBox={ "0 0 " (width) " 22" } role="img" aria-label=(label) {
            title { (label) }
            @for (i, c) in marks.iter().enumerate() {
                rect x=(i * STEP) y="1" width=(MARK) height="20" rx="1.5"
                    fill=(mark_color(c.status)) {
                    title {
                        (c.status.as_str()) " · " (text::utc(c.date_added))
                        @if let Some(ms) = c.duration_ms { " · " (text::duration_ms(ms)) }
                    }
                }
            }
        }
    }
}

fn mark_color(status: CheckInStatus) -> &'static str {
    match status {
        CheckInStatus::Ok => "#2da44e",
        CheckInStatus::Error => "#cf222e",
        CheckInStatus::Timeout => "#bc4c00",
        CheckInStatus::Missed => "#d4a72c",
        CheckInStatus::InProgress => "#0969da",
        CheckInStatus::Unknown => "#8c959f",
    }
}

fn status_pills(m: &MonitorEnv) -> Markup {
    let (class, label) = match m.status {
        MonitorStatus::Ok => ("ok", "ok"),
        MonitorStatus::Error => ("error", "failing"),
        MonitorStatus::Active => ("active", "waiting"),
        MonitorStatus::Disabled => ("disabled", "disabled"),
    };
    html! {
        span class={ "pill " (class) } { (label) }
        @if m.muted { " " span.pill.muted { "muted" } }
    }
}

fn reason(reason: IncidentReason) -> &'static str {
    match reason {
        IncidentReason::MissedCheckin => "missed check-in",
        IncidentReason::Timeout => "timeout",
        IncidentReason::Error => "error",
    }
}

/// A time as "3 min ago", with the exact time on hover and for machines.
fn at(at: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! { time datetime=(rfc3339_millis(at)) title=(text::utc(at)) { (text::relative(at, now)) } }
}

fn when(time: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    match time {
        Some(time) => at(time, now),
        None => html! { span.dim { "—" } },
    }
}

/// The dashboard path of an issue. Ids are hex; anything else is percent-encoded.
pub(crate) fn issue_url(id: &str) -> String {
    format!("/issues/{}", percent_encode(id))
}

/// The dashboard path of a monitor. Slugs are `[a-z0-9_-]`, so they need no encoding.
pub(crate) fn monitor_url(project: u64, slug: &str) -> String {
    format!("/monitors/{project}/{slug}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_text_never_markup() {
        let html = log_text("<script>alert(1)</script>\nsecond line").into_string();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
    }

    #[test]
    fn the_policy_allows_exactly_the_stylesheet() {
        assert!(CSP.contains("default-src 'none'"));
        assert!(CSP.contains("style-src 'sha256-"));
        assert!(!CSP.contains("script-src"));
    }
}
