//! Serde helpers for UUIDs as Sentry writes them: 32 lowercase hex digits, while accepting the
//! dashed form too.

use serde::{Deserialize, Deserializer, Serializer};
use uuid::Uuid;

pub(crate) fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&id.simple())
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    Uuid::parse_str(&text).map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid UUID `{text}`: expected 32 hex digits, with or without dashes"
        ))
    })
}

/// The same, for `Option<Uuid>` fields; `null` and an absent field are `None`.
pub(crate) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(id: &Option<Uuid>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => super::serialize(id, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] Uuid);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(id)| id))
    }
}
