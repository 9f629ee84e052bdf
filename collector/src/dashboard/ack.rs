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
use crate::engine::alerting::when;
use crate::engine::oncall::MAX_ACK_NAME;
use crate::engine::{Incident, IncidentKind};
use crate::processor::ProcessError;
use crate::server::AppState;

/// The confirmation form.
#[derive(Debug, Deserialize)]
pub(super) struct AckForm {
    /// Who acknowledges.
    #[serde(default)]
    by: String,
}

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
    match state.processor.acknowledge(id, &form.by).await {
        Ok(incident) => done(&incident),
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
            button type="submit" { "Acknowledge" }
        }
    }
}

fn done(incident: &Incident) -> Response {
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
