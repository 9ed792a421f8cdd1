//! Google Analytics 4's default channel group for manual traffic (source, medium and
//! campaign), rule by rule as Google documents it at
//! <https://support.google.com/analytics/answer/9756891>, with Google's lists of search,
//! social, shopping and video sites from `shared/data/ga4/`.
//!
//! Where Google's definition of a channel has an OR across fields, the channel has one rule
//! per branch, next to each other, which is the same under first-match-wins.

use std::sync::OnceLock;

use rustc_hash::FxHashSet;
use serde_json::{Value, json};

pub(super) const SEARCH_SITES: &str = include_str!("../../data/ga4/search.txt");
pub(super) const SOCIAL_SITES: &str = include_str!("../../data/ga4/social.txt");
pub(super) const SHOPPING_SITES: &str = include_str!("../../data/ga4/shopping.txt");
pub(super) const VIDEO_SITES: &str = include_str!("../../data/ga4/video.txt");

/// The medium of paid traffic: `^(.*cp.*|ppc|retargeting|paid.*)$`.
const PAID_MEDIUM: &str = "^(.*cp.*|ppc|retargeting|paid.*)$";
/// A campaign name of shopping: `^(.*(([^a-df-z]|^)shop|shopping).*)$`.
const SHOPPING_CAMPAIGN: &str = "^(.*(([^a-df-z]|^)shop|shopping).*)$";

/// The rules in Google's order, as JSON (the same form users give).
pub(super) fn rules() -> Value {
    let search = sites(SEARCH_SITES);
    let social = sites(SOCIAL_SITES);
    let shopping = sites(SHOPPING_SITES);
    let video = sites(VIDEO_SITES);
    let paid = json!({"regex": PAID_MEDIUM});
    let email = json!({"in": ["email", "e-mail", "e_mail", "e mail"]});
    json!([
        // Source exactly matches "(direct)" AND Medium is one of ("(not set)", "(none)").
        {"channel": "Direct", "when": {"source": {"equals": "(direct)"}, "medium": {"in": ["(not set)", "(none)"]}}},
        // Campaign Name contains "cross-network".
        {"channel": "Cross-network", "when": {"campaign": {"contains": "cross-network"}}},
        // (Source matches a list of shopping sites OR Campaign Name matches the shopping regex)
        // AND Medium matches the paid regex.
        {"channel": "Paid Shopping", "when": {"source": {"in": shopping}, "medium": paid}},
        {"channel": "Paid Shopping", "when": {"campaign": {"regex": SHOPPING_CAMPAIGN}, "medium": paid}},
        // Source matches a list of search / social / video sites AND Medium matches the paid regex.
        {"channel": "Paid Search", "when": {"source": {"in": search}, "medium": paid}},
        {"channel": "Paid Social", "when": {"source": {"in": social}, "medium": paid}},
        {"channel": "Paid Video", "when": {"source": {"in": video}, "medium": paid}},
        // Medium is one of ("display", "banner", "expandable", "interstitial", "cpm").
        {"channel": "Display", "when": {"medium": {"in": ["display", "banner", "expandable", "interstitial", "cpm"]}}},
        // Medium matches the paid regex.
        {"channel": "Paid Other", "when": {"medium": paid}},
        // Source matches a list of shopping sites OR Campaign name matches the shopping regex.
        {"channel": "Organic Shopping", "when": {"source": {"in": shopping}}},
        {"channel": "Organic Shopping", "when": {"campaign": {"regex": SHOPPING_CAMPAIGN}}},
        // Source matches a list of social sites OR Medium is one of ("social", "social-network",
        // "social-media", "sm", "social network", "social media").
        {"channel": "Organic Social", "when": {"source": {"in": social}}},
        {"channel": "Organic Social", "when": {"medium": {"in": [
            "social", "social-network", "social-media", "sm", "social network", "social media"
        ]}}},
        // Source matches a list of video sites OR Medium matches regex ^(.*video.*)$.
        {"channel": "Organic Video", "when": {"source": {"in": video}}},
        {"channel": "Organic Video", "when": {"medium": {"regex": "^(.*video.*)$"}}},
        // Source matches a list of search sites OR Medium exactly matches organic.
        {"channel": "Organic Search", "when": {"source": {"in": search}}},
        {"channel": "Organic Search", "when": {"medium": {"equals": "organic"}}},
        // Medium is one of ("referral", "app", or "link").
        {"channel": "Referral", "when": {"medium": {"in": ["referral", "app", "link"]}}},
        // Source = email|e-mail|e_mail|e mail OR Medium = email|e-mail|e_mail|e mail.
        {"channel": "Email", "when": {"source": email}},
        {"channel": "Email", "when": {"medium": email}},
        // Medium = affiliate.
        {"channel": "Affiliates", "when": {"medium": {"equals": "affiliate"}}},
        // Medium exactly matches audio.
        {"channel": "Audio", "when": {"medium": {"equals": "audio"}}},
        // Source exactly matches sms OR Medium exactly matches sms.
        {"channel": "SMS", "when": {"source": {"equals": "sms"}}},
        {"channel": "SMS", "when": {"medium": {"equals": "sms"}}},
        // Medium ends with "push" OR Medium contains "mobile" or "notification" OR Source
        // exactly matches "firebase".
        {"channel": "Mobile Push Notifications", "when": {"medium": {"ends_with": "push"}}},
        {"channel": "Mobile Push Notifications", "when": {"medium": {"contains": "mobile"}}},
        {"channel": "Mobile Push Notifications", "when": {"medium": {"contains": "notification"}}},
        {"channel": "Mobile Push Notifications", "when": {"source": {"equals": "firebase"}}},
    ])
}

/// The search engine of a referrer's host, as Google Analytics names it in a source: the
/// host when Google's list of search sites has it (`m.baidu.com`), else the host's first
/// label when the list has that (`google.com`, `google.co.uk` → `google`).
pub(super) fn search_engine(host: &str) -> Option<&str> {
    static SEARCH: OnceLock<FxHashSet<String>> = OnceLock::new();
    let search = SEARCH.get_or_init(|| sites(SEARCH_SITES).into_iter().map(str::to_lowercase).collect());
    let label = host.split('.').next().unwrap_or(host);
    [host, label].into_iter().find(|name| search.contains(*name))
}

/// The sites of a data file: one a line, `#` comments and blank lines skipped.
pub(super) fn sites(file: &str) -> Vec<&str> {
    file.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).collect()
}
