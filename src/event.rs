//! An event as the routing logic sees it: its type, the consent stamped at capture, its id and
//! its serialised form. The payload itself stays opaque (a `JsValue` in the browser), so the hot
//! path never converts event properties into Rust values.

use std::rc::Rc;

use crate::consent::Purposes;

/// The event types' names, in declaration order.
const NAMES: [&str; 6] = ["track", "page", "identify", "group", "alias", "consent"];

/// The Segment event types, plus `consent` for consent changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `track(event, properties)`.
    Track,
    /// `page(name, properties)`.
    Page,
    /// `identify(userId, traits)`.
    Identify,
    /// `group(groupId, traits)`.
    Group,
    /// `alias(userId, previousId)`.
    Alias,
    /// A consent change; reaches every loaded destination whatever its purposes.
    Consent,
}

impl EventKind {
    /// The event's `type` field, which is also the destination hook's name.
    pub fn name(self) -> &'static str {
        NAMES[self as usize]
    }

    /// Parses an event `type`.
    pub fn from_name(s: &str) -> Option<EventKind> {
        const ALL: [EventKind; 6] = [
            EventKind::Track,
            EventKind::Page,
            EventKind::Identify,
            EventKind::Group,
            EventKind::Alias,
            EventKind::Consent,
        ];
        NAMES.iter().position(|n| *n == s).map(|i| ALL[i])
    }
}

/// A captured event on its way to destinations. Shared (`Rc`) between destination queues.
#[derive(Debug)]
pub struct Envelope<P> {
    /// Capture order, increasing; assigned by the manager.
    pub seq: u64,
    /// The event type.
    pub kind: EventKind,
    /// The purposes granted when the event was captured: the routing decision uses these.
    pub consent: Purposes,
    /// The event's `messageId` (idempotency key).
    pub message_id: Rc<str>,
    /// The event as JSON text (what the relay sends and the dead-letter queue stores).
    pub json: Rc<str>,
    /// The event object itself (a `JsValue` in the browser).
    pub payload: P,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let kinds = [
            (EventKind::Track, "track"),
            (EventKind::Page, "page"),
            (EventKind::Identify, "identify"),
            (EventKind::Group, "group"),
            (EventKind::Alias, "alias"),
            (EventKind::Consent, "consent"),
        ];
        for (k, name) in kinds {
            assert_eq!(k.name(), name);
            assert_eq!(EventKind::from_name(name), Some(k));
        }
        assert_eq!(EventKind::from_name("screen"), None);
    }
}
