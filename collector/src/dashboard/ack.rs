//! The pages behind an alert's acknowledge link (`crate::ack`): `GET /ack/{token}` shows what
//! the link would acknowledge and a form; only that form's `POST` to the same URL acknowledges.
//! Chat apps and mail scanners fetch links to preview them, so a `GET` must change nothing.
//!
//! No login: the signed token is the credential, and it can do exactly one thing, once. The
//! pages carry the dashboard's headers (no script, no framing, no caching, no referrer).

use axum::extract::{Form, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::pages::{layout, monitor_url};
use crate::ack::{LinkError, refusal_status};
use crate::app::AppState;
use crate::engine::alerting::when;
use crate::engine::oncall::MAX_ACK_NAME;
use crate::engine::{Incident, IncidentKind};
use crate::probe::Snoozed;
use crate::processor::{Patch, ProcessError, Target};

/// The confirmation form.
#[derive(Debug, Deserialize)]
pub(super) struct AckForm {
    /// Who acknowledges.
    #[serde(default)]
    by: String,
    /// Also snooze the monitor: one of [`SNOOZES`] by name; empty: no.
    #[serde(default)]
    snooze: String,
}

/// What the page offers to snooze the monitor for, with the acknowledgement.
const SNOOZES: [(&str, u64); 3] = [("1h", 3600), ("4h", 4 * 3600), ("24h", 24 * 3600)];

/// `GET /ack/{token}`: what the link acknowledges, and the button that does it.
pub(super) async fn confirm_page(
    State(state): State<AppState>,
    UrlPath(token): UrlPath<String>,
) -> Response {
    let id = match verify(&state, &token) {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    let incident = match state.store.open_incident(id) {
        Ok(Some(incident)) => incident,
        Ok(None) => {
            return refusal(
                StatusCode::CONFLICT,
                "Nothing to acknowledge",
                &format!(
                    "Incident {} is not open any more (the monitor recovered): there is nothing to acknowledge.",
                    id.simple()
                ),
            );
        }
        Err(error) => return store_failed(&error),
    };
    if let Some(ack) = &incident.handling.acknowledged {
        return refusal(
            StatusCode::CONFLICT,
            "Already acknowledged",
            &format!(
                "{} acknowledged this incident at {}; its alert is no longer repeated.",
                ack.by,
                when(ack.at)
            ),
        );
    }
    page(StatusCode::OK, "Acknowledge", &form(&incident, &token))
}

/// `POST /ack/{token}`: acknowledges, once.
pub(super) async fn acknowledge(
    State(state): State<AppState>,
    UrlPath(token): UrlPath<String>,
    Form(form): Form<AckForm>,
) -> Response {
    let id = match verify(&state, &token) {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    // Checked before anything is written: a bad choice changes nothing.
    let snooze = match form.snooze.as_str() {
        "" => None,
        name => match SNOOZES.iter().find(|(n, _)| *n == name) {
            Some((_, secs)) => Some(std::time::Duration::from_secs(*secs)),
            None => {
                return refusal(
                    StatusCode::BAD_REQUEST,
                    "Not acknowledged",
                    "Snooze for 1h, 4h or 24h, or leave it unset.",
                );
            }
        },
    };
    match state.processor.acknowledge(id, &form.by).await {
        Ok(incident) => match snooze {
            None => done(&incident, None),
            Some(duration) => match snooze_subject(&state, &incident, duration).await {
                Ok(()) => done(&incident, Some(&form.snooze)),
                Err(error) => refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Acknowledged, not snoozed",
                    &format!(
                        "The incident is acknowledged, but its {} could not be snoozed: {error}; snooze it on the dashboard.",
                        subject(&incident)
                    ),
                ),
            },
        },
        Err(ProcessError::Acknowledge(refused)) => {
            let (status, _) = refusal_status(&refused);
            refusal(status, "Not acknowledged", &refused.to_string())
        }
        Err(error) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not acknowledged",
            &format!("{error}; try the link again in a moment"),
        ),
    }
}

/// "monitor" or "probe": what an incident is of.
fn subject(incident: &Incident) -> &'static str {
    match incident.kind {
        IncidentKind::Monitor => "monitor",
        IncidentKind::Probe => "probe",
    }
}

/// Snoozes what the incident is of for `duration`: a monitor environment through the
/// processor, a probe through its task (which owns the probe's state).
async fn snooze_subject(
    state: &AppState,
    incident: &Incident,
    duration: std::time::Duration,
) -> Result<(), String> {
    match incident.kind {
        IncidentKind::Monitor => {
            let patch = Patch {
                snooze: Some(Some(duration)),
                ..Patch::default()
            };
            let key = incident.key.clone();
            state
                .processor
                .patch(Target::One(key), patch)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        IncidentKind::Probe => {
            let until = chrono::TimeDelta::from_std(duration)
                .ok()
                .and_then(|d| Utc::now().checked_add_signed(d));
            match state.probes.snooze(&incident.key.slug, until).await {
                Ok(Snoozed::Done(_)) => Ok(()),
                Ok(Snoozed::NoProbe) => Err("the probe is no longer configured".to_owned()),
                Ok(Snoozed::ProberAway) => Err("the prober is not running right now".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

/// Why a link does not work: the status and the sentence of its page.
struct Refused {
    status: StatusCode,
    message: String,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        refusal(self.status, "This link does not work", &self.message)
    }
}

/// The incident a token names, or why the link does not work.
fn verify(state: &AppState, token: &str) -> Result<Uuid, Refused> {
    let Some(keys) = state.processor.ack_keys() else {
        return Err(Refused {
            status: StatusCode::NOT_FOUND,
            message: "This Watchpost does not sign acknowledge links; acknowledge the incident \
                      on the dashboard."
                .to_owned(),
        });
    };
    keys.verify(token, Utc::now()).map_err(|error| Refused {
        status: match error {
            LinkError::Malformed => StatusCode::BAD_REQUEST,
            LinkError::BadSignature => StatusCode::FORBIDDEN,
            LinkError::Expired(_) => StatusCode::GONE,
        },
        message: error.to_string(),
    })
}

fn form(incident: &Incident, token: &str) -> Markup {
    let key = &incident.key;
    html! {
        h1 { "Acknowledge this incident?" }
        p {
            @match incident.kind {
                IncidentKind::Monitor => {
                    "Monitor " a href=(monitor_url(key.project, &key.slug)) { (key.slug) }
                    " (" (key.environment) ")"
                }
                IncidentKind::Probe => { "Probe " (key.slug) }
            }
            " has been failing since " (when(incident.starting_timestamp)) ": "
            (incident.summary()) "."
        }
        p.dim {
            "Acknowledging tells everyone you are on it: the alert stops repeating and the "
            "channels hear who acknowledged."
        }
        form method="post" action=(format!("/ack/{token}")) {
            label for="by" { "Your name" }
            input #by type="text" name="by" required maxlength=(MAX_ACK_NAME) autofocus;
            label for="snooze" { "Also snooze the " (subject(incident)) " (hold its new alerts)" }
            select #snooze name="snooze" {
                option value="" selected { "no" }
                @for (name, _) in SNOOZES { option value=(name) { "for " (name) } }
            }
            button type="submit" { "Acknowledge" }
        }
    }
}

fn done(incident: &Incident, snoozed: Option<&str>) -> Response {
    let (by, at) = incident
        .handling
        .acknowledged
        .as_ref()
        .map(|ack| (ack.by.as_str(), ack.at))
        .unwrap_or(("someone", Utc::now()));
    page(
        StatusCode::OK,
        "Acknowledged",
        &html! {
            h1 { "Acknowledged" }
            p {
                "Acknowledged by " (by) " at " (when(at)) ". The alert about "
                (incident.key.slug) " (" (incident.key.environment) ") is no longer repeated; "
                "the recovery will say who acknowledged it."
            }
            @if let Some(snoozed) = snoozed {
                p { "The " (subject(incident)) " is snoozed for " (snoozed) "." }
            }
        },
    )
}

fn refusal(status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        title,
        &html! {
            h1 { (title) }
            p.problem { (message) }
        },
    )
}

fn store_failed(error: &crate::store::StoreError) -> Response {
    tracing::error!(%error, "acknowledge page cannot read the store");
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "Something went wrong",
        &format!("The store could not be read: {error}; try the link again in a moment."),
    )
}

fn page(status: StatusCode, title: &str, body: &Markup) -> Response {
    (status, layout(title, None, body)).into_response()
}
