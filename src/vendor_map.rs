//! The pure rules of the built-in vendor destinations (`posthog`, `meta-pixel`, `ga4`, `gtm`):
//! which settings each takes, what its account id looks like, its default script URL, Meta's
//! standard event names and the Google Consent Mode v2 mapping. The browser side
//! (`web::destinations::vendors`) applies them; here they are tested natively.

use crate::consent::{Purpose, Purposes};

/// A built-in vendor tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// PostHog (`window.posthog`).
    PostHog,
    /// Meta Pixel (`window.fbq`).
    MetaPixel,
    /// Google Analytics 4 through gtag.js (`window.gtag`, `window.dataLayer`).
    Ga4,
    /// Google Tag Manager (`window.dataLayer`).
    Gtm,
}

/// PostHog's default `apiHost`.
pub const POSTHOG_API_HOST: &str = "https://us.i.posthog.com";

/// Meta's standard event names: `track` with one of these is `fbq('track', …)`, anything else
/// `fbq('trackCustom', …)`.
pub const META_STANDARD_EVENTS: [&str; 18] = [
    "PageView",
    "ViewContent",
    "Search",
    "AddToCart",
    "AddToWishlist",
    "InitiateCheckout",
    "AddPaymentInfo",
    "Purchase",
    "Lead",
    "CompleteRegistration",
    "Contact",
    "CustomizeProduct",
    "Donate",
    "FindLocation",
    "Schedule",
    "StartTrial",
    "SubmitApplication",
    "Subscribe",
];

/// Google Consent Mode v2 types and the purpose that grants each.
pub const CONSENT_MODE: [(&str, Purpose); 7] = [
    ("security_storage", Purpose::Necessary),
    ("functionality_storage", Purpose::Functionality),
    ("personalization_storage", Purpose::Experience),
    ("analytics_storage", Purpose::Measurement),
    ("ad_storage", Purpose::Marketing),
    ("ad_user_data", Purpose::Marketing),
    ("ad_personalization", Purpose::Marketing),
];

impl Vendor {
    /// The vendor of a destination type name, `None` for other types.
    pub fn from_kind(kind: &str) -> Option<Vendor> {
        match kind {
            "posthog" => Some(Vendor::PostHog),
            "meta-pixel" => Some(Vendor::MetaPixel),
            "ga4" => Some(Vendor::Ga4),
            "gtm" => Some(Vendor::Gtm),
            _ => None,
        }
    }

    /// The settings key of the vendor's account id (required).
    pub fn id_key(self) -> &'static str {
        match self {
            Vendor::PostHog => "apiKey",
            Vendor::MetaPixel => "pixelId",
            Vendor::Ga4 => "measurementId",
            Vendor::Gtm => "containerId",
        }
    }

    /// Checks the account id's shape; the error says what was expected.
    pub fn check_id(self, id: &str) -> Result<(), &'static str> {
        // After the vendor's prefix, at least one digit (Meta) or ASCII letter or digit.
        let rest = match self {
            Vendor::PostHog => Some(id.trim()),
            Vendor::MetaPixel => Some(id),
            Vendor::Ga4 => id.strip_prefix("G-"),
            Vendor::Gtm => id.strip_prefix("GTM-"),
        };
        if let Some(rest) = rest {
            let mut ok = !rest.is_empty();
            if self != Vendor::PostHog {
                for b in rest.bytes() {
                    if !(b.is_ascii_digit() || self != Vendor::MetaPixel && b.is_ascii_alphabetic())
                    {
                        ok = false;
                    }
                }
            }
            if ok {
                return Ok(());
            }
        }
        Err(match self {
            Vendor::PostHog => "a non-empty project API key",
            Vendor::MetaPixel => "a pixel id made of digits",
            Vendor::Ga4 => "a measurement id like 'G-XXXXXXX'",
            Vendor::Gtm => "a container id like 'GTM-XXXXXXX'",
        })
    }

    /// The vendor's own script URL for an account id (and, for PostHog, its `apiHost`: the
    /// `<region>.i.posthog.com` hosts have their assets on `<region>-assets.i.posthog.com`,
    /// any other host, such as a reverse proxy, serves `/static/array.js` itself).
    pub fn default_script(self, id: &str, api_host: &str) -> String {
        match self {
            Vendor::PostHog => {
                let host = api_host.trim_end_matches('/');
                match host.strip_suffix(".i.posthog.com") {
                    Some(region) if region.starts_with("https://") => {
                        [region, "-assets.i.posthog.com/static/array.js"].concat()
                    }
                    // A reverse proxy (or another PostHog host) serves the script itself, as
                    // PostHog's own snippet loads it.
                    _ => [host, "/static/array.js"].concat(),
                }
            }
            Vendor::MetaPixel => "https://connect.facebook.net/en_US/fbevents.js".into(),
            Vendor::Ga4 => ["https://www.googletagmanager.com/gtag/js?id=", id].concat(),
            Vendor::Gtm => ["https://www.googletagmanager.com/gtm.js?id=", id].concat(),
        }
    }

    /// Whether the vendor has its own opt-in / opt-out switch (PostHog's `opt_in_capturing`,
    /// Meta's `fbq('consent')`), which is on exactly while the destination's `requiredConsent`
    /// is granted; Consent Mode vendors follow every purpose instead.
    pub fn has_switch(self) -> bool {
        matches!(self, Vendor::PostHog | Vendor::MetaPixel)
    }

    /// Whether going from consent `before` to `after` is something to tell the vendor of a
    /// destination that requires `required`.
    pub fn consent_changed(self, required: Purposes, before: Purposes, after: Purposes) -> bool {
        if self.has_switch() {
            before.covers(required) != after.covers(required)
        } else {
            consent_mode_bits(before) != consent_mode_bits(after)
        }
    }
}

/// Whether `name` is one of Meta's standard events.
pub fn is_meta_standard(name: &str) -> bool {
    META_STANDARD_EVENTS.contains(&name)
}

/// The Consent Mode v2 state for the granted purposes: `(type, "granted" | "denied")` pairs.
pub fn consent_mode(granted: Purposes) -> impl Iterator<Item = (&'static str, &'static str)> {
    CONSENT_MODE
        .into_iter()
        .map(move |(k, p)| (k, if granted.has(p) { "granted" } else { "denied" }))
}

/// The same state as bits in `CONSENT_MODE` order (bit `i` set: type `i` granted), the form the
/// browser side hands to `vendors.js`, which lists the type names in the same order.
pub fn consent_mode_bits(granted: Purposes) -> u8 {
    let mut bits = 0;
    for (i, &(_, p)) in CONSENT_MODE.iter().enumerate() {
        bits |= (granted.has(p) as u8) << i;
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;
    use Purpose::*;

    #[test]
    fn meta_standard_names_are_exact_and_case_sensitive() {
        for n in ["PageView", "Purchase", "Lead", "Subscribe", "AddToCart"] {
            assert!(is_meta_standard(n), "{n}");
        }
        for n in [
            "purchase",
            "Order Completed",
            "Add To Cart",
            "",
            "PageView ",
        ] {
            assert!(!is_meta_standard(n), "{n:?}");
        }
    }

    #[test]
    fn consent_mode_maps_every_purpose() {
        let all: Vec<_> = consent_mode(Purposes::of(&[Necessary])).collect();
        assert_eq!(
            all,
            vec![
                ("security_storage", "granted"),
                ("functionality_storage", "denied"),
                ("personalization_storage", "denied"),
                ("analytics_storage", "denied"),
                ("ad_storage", "denied"),
                ("ad_user_data", "denied"),
                ("ad_personalization", "denied"),
            ]
        );
        let m: Vec<_> = consent_mode(Purposes::of(&[Necessary, Marketing, Experience]))
            .filter(|&(_, v)| v == "granted")
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            m,
            vec![
                "security_storage",
                "personalization_storage",
                "ad_storage",
                "ad_user_data",
                "ad_personalization"
            ]
        );
        let f: Vec<_> = consent_mode(Purposes::of(&[Functionality, Measurement]))
            .filter(|&(_, v)| v == "granted")
            .map(|(k, _)| k)
            .collect();
        assert_eq!(f, vec!["functionality_storage", "analytics_storage"]);
    }

    #[test]
    fn consent_mode_bits_follow_the_table() {
        for granted in [
            Purposes::of(&[Necessary]),
            Purposes::of(&[Necessary, Measurement]),
            Purposes::of(&[Necessary, Marketing, Experience]),
            Purposes::of(&[Necessary, Functionality, Measurement, Marketing, Experience]),
        ] {
            let bits = consent_mode_bits(granted);
            for (i, (_, v)) in consent_mode(granted).enumerate() {
                assert_eq!(bits >> i & 1 == 1, v == "granted", "{i}");
            }
        }
        assert_eq!(consent_mode_bits(Purposes::of(&[Necessary])), 1);
    }

    #[test]
    fn vendors_js_lists_the_consent_mode_types_in_table_order() {
        let names: Vec<_> = CONSENT_MODE.iter().map(|&(k, _)| k).collect();
        let js = include_str!("web/destinations/vendors.js");
        assert!(js.contains(&["'", &names.join(" "), "'"].concat()));
    }

    #[test]
    fn account_ids_are_checked() {
        assert!(Vendor::MetaPixel.check_id("1234567890").is_ok());
        assert!(Vendor::MetaPixel.check_id("12a4").is_err());
        assert!(Vendor::MetaPixel.check_id("").is_err());
        assert!(Vendor::Ga4.check_id("G-ABC123XYZ").is_ok());
        assert!(Vendor::Ga4.check_id("UA-12345-1").is_err());
        assert!(Vendor::Ga4.check_id("G-").is_err());
        assert!(Vendor::Ga4.check_id("G-AB C").is_err());
        assert!(Vendor::Gtm.check_id("GTM-K9X2QF").is_ok());
        assert!(Vendor::Gtm.check_id("GTM-").is_err());
        assert!(Vendor::Gtm.check_id("G-K9X2QF").is_err());
        assert!(Vendor::PostHog.check_id("phc_abc").is_ok());
        assert!(Vendor::PostHog.check_id("  ").is_err());
    }

    #[test]
    fn default_scripts_are_the_vendor_cdns() {
        assert_eq!(
            Vendor::PostHog.default_script("phc", POSTHOG_API_HOST),
            "https://us-assets.i.posthog.com/static/array.js"
        );
        assert_eq!(
            Vendor::PostHog.default_script("phc", "https://eu.i.posthog.com/"),
            "https://eu-assets.i.posthog.com/static/array.js"
        );
        assert_eq!(
            Vendor::PostHog.default_script("phc", "https://ph.shop.example/"),
            "https://ph.shop.example/static/array.js"
        );
        assert_eq!(
            Vendor::MetaPixel.default_script("1", ""),
            "https://connect.facebook.net/en_US/fbevents.js"
        );
        assert_eq!(
            Vendor::Ga4.default_script("G-AB12", ""),
            "https://www.googletagmanager.com/gtag/js?id=G-AB12"
        );
        assert_eq!(
            Vendor::Gtm.default_script("GTM-AB12", ""),
            "https://www.googletagmanager.com/gtm.js?id=GTM-AB12"
        );
    }

    #[test]
    fn only_relevant_consent_changes_reach_the_vendor() {
        let none = Purposes::of(&[Necessary]);
        let meas = none.with(Measurement, true);
        let mark = none.with(Marketing, true);
        let both = meas.with(Marketing, true);
        // A switch follows the destination's requiredConsent, whatever it is.
        assert!(Vendor::PostHog.consent_changed(meas, none, meas));
        assert!(!Vendor::PostHog.consent_changed(meas, none, mark));
        assert!(Vendor::MetaPixel.consent_changed(mark, meas, mark));
        assert!(!Vendor::MetaPixel.consent_changed(mark, none, meas));
        assert!(
            Vendor::PostHog.consent_changed(both, both, meas),
            "one of two lost"
        );
        assert!(
            !Vendor::PostHog.consent_changed(both, meas, mark),
            "off before and after"
        );
        assert!(!Vendor::MetaPixel.consent_changed(Purposes::NONE, none, both));
        assert!(Vendor::Ga4.consent_changed(meas, none, mark));
        assert!(Vendor::Gtm.consent_changed(none, none, none.with(Experience, true)));
        assert!(!Vendor::Ga4.consent_changed(meas, meas, meas));
    }

    #[test]
    fn types_from_their_names() {
        for (k, v) in [
            ("posthog", Vendor::PostHog),
            ("meta-pixel", Vendor::MetaPixel),
            ("ga4", Vendor::Ga4),
            ("gtm", Vendor::Gtm),
        ] {
            assert_eq!(Vendor::from_kind(k), Some(v));
        }
        assert_eq!(Vendor::from_kind("script"), None);
    }
}
