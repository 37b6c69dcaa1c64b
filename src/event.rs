//! An event as the routing logic sees it: its type, the consent stamped at capture, its id and
//! its serialised form. The payload itself stays opaque (a `JsValue` in the browser), so the hot
//! path never converts event properties into Rust values.

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::rc::Rc;

use crate::consent::Purposes;

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
        match self {
            EventKind::Track => "track",
            EventKind::Page => "page",
            EventKind::Identify => "identify",
            EventKind::Group => "group",
            EventKind::Alias => "alias",
            EventKind::Consent => "consent",
        }
    }

    /// Parses an event `type`.
    pub fn from_name(s: &str) -> Option<EventKind> {
        [
            EventKind::Track,
            EventKind::Page,
            EventKind::Identify,
            EventKind::Group,
            EventKind::Alias,
            EventKind::Consent,
        ]
        .into_iter()
        .find(|k| k.name() == s)
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
