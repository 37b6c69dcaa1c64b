//! The consent model: five purposes (c15t's names), `necessary` always granted, and the rule
//! that decides whether an event captured under some consent may reach a destination.

/// The purposes' names, in the order of their discriminants.
const NAMES: [&str; 5] = [
    "necessary",
    "functionality",
    "experience",
    "measurement",
    "marketing",
];

/// A consent purpose. The discriminant is its bit in [`Purposes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Strictly necessary; always granted, cannot be revoked.
    Necessary = 0,
    /// Functional features (preferences, chat widgets).
    Functionality = 1,
    /// Experience and personalisation.
    Experience = 2,
    /// Measurement and analytics.
    Measurement = 3,
    /// Marketing and advertising.
    Marketing = 4,
}

impl Purpose {
    /// Every purpose, in the order they are reported.
    pub const ALL: [Purpose; 5] = [
        Purpose::Necessary,
        Purpose::Functionality,
        Purpose::Experience,
        Purpose::Measurement,
        Purpose::Marketing,
    ];

    /// The purpose's name as it appears in config and events.
    pub fn name(self) -> &'static str {
        NAMES[self as usize]
    }

    /// Parses a purpose name; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Purpose> {
        NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Purpose::ALL[i])
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of purposes: what the visitor granted, or what a destination requires.
/// `necessary` is always a member of a granted set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Purposes(u8);

impl Purposes {
    /// The empty set (as a requirement: only `necessary`).
    pub const NONE: Purposes = Purposes(0);

    /// The set holding just these purposes.
    pub fn of(list: &[Purpose]) -> Purposes {
        Purposes(list.iter().fold(0, |acc, p| acc | p.bit()))
    }

    /// Whether `p` is in the set.
    pub fn has(self, p: Purpose) -> bool {
        self.0 & p.bit() != 0
    }

    /// The set with `p` added or removed.
    pub fn with(self, p: Purpose, on: bool) -> Purposes {
        if on {
            Purposes(self.0 | p.bit())
        } else {
            Purposes(self.0 & !p.bit())
        }
    }

    /// The set less the purposes of `other`.
    pub fn without(self, other: Purposes) -> Purposes {
        Purposes(self.0 & !other.0)
    }

    /// Whether every purpose in `required` is in this set.
    pub fn covers(self, required: Purposes) -> bool {
        required.0 & !self.0 == 0
    }

    /// The raw bits (bit i = `Purpose::ALL[i]`), e.g. for a compact cache key.
    pub fn bits(self) -> u8 {
        self.0
    }
}

/// The visitor's current consent. Always includes `necessary`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consent(Purposes);

impl Consent {
    /// The initial state: `granted` over `{ necessary: true }`; with Global Privacy Control on
    /// and honoured, `marketing` and `measurement` start denied whatever `granted` says.
    pub fn initial(granted: Purposes, gpc: bool, honor_gpc: bool) -> Consent {
        let mut p = granted.with(Purpose::Necessary, true);
        if gpc && honor_gpc {
            p = p
                .with(Purpose::Marketing, false)
                .with(Purpose::Measurement, false);
        }
        Consent(p)
    }

    /// Applies a partial update of `(purpose, granted)` pairs. `necessary` cannot be revoked:
    /// a `false` for it is ignored.
    pub fn merged(self, changes: &[(Purpose, bool)]) -> Consent {
        let p = changes.iter().fold(self.0, |acc, &(p, on)| {
            acc.with(p, on || p == Purpose::Necessary)
        });
        Consent(p)
    }

    /// The granted purposes.
    pub fn granted(self) -> Purposes {
        self.0
    }

    /// Whether a destination requiring `required` may receive events captured under this consent.
    pub fn allows(self, required: Purposes) -> bool {
        self.0.covers(required)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Purpose::*;

    #[test]
    fn initial_state_is_necessary_only_and_merges_config() {
        let c = Consent::initial(Purposes::NONE, false, true);
        assert!(c.granted().has(Necessary));
        for p in [Functionality, Experience, Measurement, Marketing] {
            assert!(!c.granted().has(p), "{p:?} should start denied");
        }
        let c = Consent::initial(Purposes::of(&[Measurement]), false, true);
        assert!(c.granted().has(Measurement));
    }

    #[test]
    fn gpc_denies_marketing_and_measurement_unless_not_honoured() {
        let all = Purposes::of(&Purpose::ALL);
        let c = Consent::initial(all, true, true);
        assert!(!c.granted().has(Marketing));
        assert!(!c.granted().has(Measurement));
        assert!(c.granted().has(Functionality));
        assert_eq!(Consent::initial(all, true, false).granted(), all);
        // A later explicit action can still grant them.
        let c = c.merged(&[(Marketing, true)]);
        assert!(c.granted().has(Marketing));
    }

    #[test]
    fn necessary_cannot_be_revoked() {
        let c = Consent::initial(Purposes::NONE, false, true).merged(&[(Necessary, false)]);
        assert!(c.granted().has(Necessary));
        assert!(c.allows(Purposes::NONE));
    }

    #[test]
    fn allows_requires_every_purpose() {
        let c = Consent::initial(Purposes::of(&[Measurement]), false, true);
        assert!(c.allows(Purposes::of(&[Measurement])));
        assert!(c.allows(Purposes::of(&[Necessary, Measurement])));
        assert!(!c.allows(Purposes::of(&[Measurement, Marketing])));
    }

    #[test]
    fn names_round_trip() {
        for p in Purpose::ALL {
            assert_eq!(Purpose::from_name(p.name()), Some(p));
        }
        assert_eq!(Marketing.name(), "marketing");
        assert_eq!(Necessary.name(), "necessary");
        assert_eq!(Purpose::from_name("analytics"), None);
    }
}
