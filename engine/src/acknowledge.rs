//! What an acknowledgement may carry and why one changes nothing ([`AckRefusal`]): shared by
//! the monitors' on-call rules (`oncall.rs`) and the probes' (`probes.rs`), in a leaf so that
//! neither has to import the other's neighbours.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::{Acknowledgement, Handling, Incident};

/// The most characters of a name an acknowledgement keeps.
pub const MAX_ACK_NAME: usize = 100;

/// Why an acknowledgement changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckRefusal {
    /// The incident is not the monitor's open incident (resolved, or another one).
    #[error(
        "incident {0} is not open any more (the monitor recovered): there is nothing to acknowledge"
    )]
    NotOpen(Uuid),
    /// Someone acknowledged it already.
    #[error("incident {id} was already acknowledged by {} at {}", .by.by, super::outage::when(.by.at))]
    Already {
        /// The incident.
        id: Uuid,
        /// The acknowledgement that stands.
        by: Acknowledgement,
    },
    /// The incident is a probe's and the probe's task is not running (the collector is
    /// starting or stopping), so nothing can record the acknowledgement now.
    #[error(
        "incident {0} is a probe's and the prober is not running right now; retry in a few seconds"
    )]
    ProberAway(Uuid),
    /// No name was given.
    #[error("say who acknowledges: give a name of 1 to {MAX_ACK_NAME} characters")]
    NoName,
}

/// Acknowledges the open incident `open` (a monitor's or a probe's) if it is incident `id`, as
/// `by` at `now`: someone is on it, so no repeat and no held alert at the end of a quiet time
/// either. The name is trimmed and cut at [`MAX_ACK_NAME`] characters. Returns the incident as
/// acknowledged; on a refusal `open` is unchanged.
pub(crate) fn acknowledge_open(
    open: &mut Option<Incident>,
    id: Uuid,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Incident, AckRefusal> {
    let by: String = by.trim().chars().take(MAX_ACK_NAME).collect();
    if by.is_empty() {
        return Err(AckRefusal::NoName);
    }
    let Some(open) = open.as_mut().filter(|open| open.id == id) else {
        return Err(AckRefusal::NotOpen(id));
    };
    if let Some(ack) = &open.handling.acknowledged {
        return Err(AckRefusal::Already {
            id,
            by: ack.clone(),
        });
    }
    open.handling = Handling {
        acknowledged: Some(Acknowledgement { by, at: now }),
        next_repeat: None,
        repeats: open.handling.repeats,
        held_until: None,
    };
    Ok(open.clone())
}
