//! Unit tests of channel rules: each operator, the order of rules, faults named by rule and
//! field, and the GA4 default channel group row by row.

use serde_json::json;

use super::*;
use crate::error::ErrorCode;

fn rules(value: Value) -> ChannelRules {
    ChannelRules::from_json(&value).unwrap()
}

fn touch<'a>(source: &'a str, medium: &'a str, campaign: &'a str) -> Touch<'a> {
    Touch { source, medium, campaign, referrer: "" }
}

fn channel(rules: &ChannelRules, source: &str, medium: &str, campaign: &str) -> String {
    rules.channel_of(&touch(source, medium, campaign)).to_owned()
}

#[test]
fn each_operator_matches_case_insensitively() {
    for (operator, operand, matching, other) in [
        ("equals", json!("CPC"), "cpc", "cpcx"),
        ("in", json!(["Google", "bing"]), "GOOGLE", "yahoo"),
        ("regex", json!("^(cpc|ppc|paid.*)$"), "Paid_Social", "social"),
        ("contains", json!("Cross-Network"), "pmax_cross-network_eu", "network"),
        ("starts_with", json!("news"), "Newsletter", "the_news"),
        ("ends_with", json!("PUSH"), "web_push", "pushed"),
    ] {
        let set = rules(json!([{"channel": "Hit", "when": {"medium": {operator: operand}}}]));
        assert_eq!(channel(&set, "s", matching, ""), "Hit", "{operator} on {matching}");
        assert_eq!(channel(&set, "s", other, ""), UNASSIGNED, "{operator} on {other}");
    }
}

#[test]
fn a_regex_matches_anywhere_unless_anchored() {
    let set = rules(json!([{"channel": "Paid", "when": {"medium": {"regex": "cp"}}}]));
    assert_eq!(channel(&set, "s", "ecpm", ""), "Paid");
    let anchored = rules(json!([{"channel": "Paid", "when": {"medium": {"regex": "^cp$"}}}]));
    assert_eq!(channel(&anchored, "s", "ecpm", ""), UNASSIGNED);
}

#[test]
fn the_first_matching_rule_wins_and_a_rule_without_when_catches_all() {
    let set = rules(json!([
        {"channel": "Paid Search", "when": {"source": {"in": ["google", "bing"]}, "medium": {"equals": "cpc"}}},
        {"channel": "Google", "when": {"source": {"equals": "google"}}},
        {"channel": "Everything else"},
    ]));
    assert_eq!(channel(&set, "google", "cpc", ""), "Paid Search");
    assert_eq!(channel(&set, "google", "organic", ""), "Google", "every condition of a rule must hold");
    assert_eq!(channel(&set, "bing", "organic", ""), "Everything else");
    assert_eq!(set.channels(), ["Paid Search", "Google", "Everything else", UNASSIGNED]);
    assert_eq!(set.applied(), AppliedChannelRules { name: RuleSetName::Custom, rules: 3 });
}

#[test]
fn unmatched_touches_are_unassigned_and_unassigned_is_one_channel() {
    let set = rules(json!([{"channel": "Unassigned", "when": {"medium": {"equals": "none of it"}}}]));
    assert_eq!(set.channels(), [UNASSIGNED]);
    assert_eq!(channel(&set, "a", "b", "c"), UNASSIGNED);
}

#[test]
fn a_touch_without_source_and_medium_is_direct_or_its_referrer() {
    let set = ChannelRules::ga4();
    assert_eq!(set.channel_of(&Touch::default()), "Direct");
    assert_eq!(set.channel_of(&touch("  ", "", "spring_sale")), "Direct");
    let from = |referrer| set.channel_of(&Touch { referrer, ..Touch::default() }).to_owned();
    assert_eq!(from("https://www.google.com/search?q=shoes"), "Organic Search");
    assert_eq!(from("https://www.google.co.uk/"), "Organic Search");
    assert_eq!(from("https://duckduckgo.com/"), "Organic Search");
    assert_eq!(
        normalised(&Touch { referrer: "https://www.bing.com/search", ..Touch::default() })[..2],
        ["bing", "organic"]
    );
    assert_eq!(from("https://l.facebook.com/l.php?u=x"), "Organic Social");
    assert_eq!(from("https://user@blog.example.org:8443/post"), "Referral");
    assert_eq!(from("https://www.youtube.com/watch?v=1"), "Organic Video");
    // A touch with a source keeps it, whatever its referrer.
    let tagged = Touch { source: "newsletter", medium: "email", campaign: "", referrer: "https://google.com/" };
    assert_eq!(set.channel_of(&tagged), "Email");
    assert_eq!(referrer_host("android-app://com.google.android.gm/"), Some("com.google.android.gm"));
    assert_eq!(referrer_host("https:///path"), None);
}

#[test]
fn bad_rules_are_refused_naming_the_rule_and_the_field() {
    for (given, column, words) in [
        (
            json!([{"channel": "A"}, {"channel": "B", "when": {"mediun": {"equals": "x"}}}]),
            "channel_rules[1].when.mediun",
            "unknown field",
        ),
        (
            json!([{"channel": "A", "when": {"medium": {"regexp": "x"}}}]),
            "channel_rules[0].when.medium.regexp",
            "is not an operator",
        ),
        (
            json!([{"channel": "A"}, {"channel": "B"}, {"channel": "C", "when": {"source": {"regex": "(unclosed"}}}]),
            "channel_rules[2].when.source.regex",
            "not a valid regex",
        ),
        (json!([{"channel": "  "}]), "channel_rules[0].channel", "must not be empty"),
        (json!([{"when": {"source": {"equals": "x"}}}]), "channel_rules[0]", "names no `channel`"),
        (json!([{"channel": "A", "colour": 1}]), "channel_rules[0]", "unknown field `colour`"),
        (json!([{"channel": "A", "when": {"source": {}}}]), "channel_rules[0].when.source", "names no operator"),
        (
            json!([{"channel": "A", "when": {"source": {"in": []}}}]),
            "channel_rules[0].when.source.in",
            "at least one value",
        ),
        (
            json!([{"channel": "A", "when": {"source": {"equals": 3}}}]),
            "channel_rules[0].when.source.equals",
            "must be a string",
        ),
        (
            json!([{"channel": "A", "when": {"source": "google"}}]),
            "channel_rules[0].when.source",
            "object of operators",
        ),
        (json!([]), "channel_rules", "at least one rule"),
        (json!("ga5"), "channel_rules", "not a built-in rule set"),
        (json!({"channel": "A"}), "channel_rules", "array of rules"),
    ] {
        let err = ChannelRules::from_json(&given).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidOption, "{given}");
        assert_eq!(err.details[0].column.as_deref(), Some(column), "{given}: {err}");
        assert!(err.message.contains(words), "{given}: {}", err.message);
    }
}

#[test]
fn null_fields_and_operators_are_absent() {
    let set = rules(json!([{"channel": "A", "when": {"source": null, "medium": {"equals": "cpc", "regex": null}}}]));
    assert_eq!(channel(&set, "anything", "cpc", ""), "A");
    assert_eq!(channel(&set, "anything", "email", ""), UNASSIGNED);
    let err = ChannelRules::from_json(&json!([{"channel": "A", "when": {"source": {"equals": null}}}])).unwrap_err();
    assert_eq!(err.details[0].column.as_deref(), Some("channel_rules[0].when.source"));
}

#[test]
fn hostile_rule_sets_are_bounded() {
    let many: Vec<Value> = (0..=MAX_RULES).map(|i| json!({"channel": format!("c{i}")})).collect();
    let err = ChannelRules::from_json(&Value::Array(many)).unwrap_err();
    assert!(err.message.contains("more than the 1000"), "{}", err.message);

    let long = "x".repeat(MAX_VALUE_BYTES + 1);
    let err = ChannelRules::from_json(&json!([{"channel": "A", "when": {"source": {"contains": long}}}])).unwrap_err();
    assert!(err.message.contains("longer than 1024 bytes"), "{}", err.message);
    assert!(err.size() < 1024, "the value is not echoed: {}", err.size());

    let values: Vec<String> = (0..=MAX_LIST_VALUES).map(|i| i.to_string()).collect();
    let err = ChannelRules::from_json(&json!([{"channel": "A", "when": {"source": {"in": values}}}])).unwrap_err();
    assert!(err.message.contains("more than the 50000 values"), "{}", err.message);

    let many: Vec<Value> =
        (0..=MAX_REGEXES).map(|i| json!({"channel": "A", "when": {"source": {"regex": format!("^s{i}$")}}})).collect();
    let err = ChannelRules::from_json(&Value::Array(many)).unwrap_err();
    assert_eq!(err.details[0].column.as_deref(), Some("channel_rules[200].when.source.regex"), "{err}");

    // A short pattern whose compiled form is enormous is refused by the size limit.
    let err = ChannelRules::from_json(&json!([{"channel": "A", "when": {"source": {"regex": "\\w{1000}{1000}"}}}]))
        .unwrap_err();
    assert!(err.message.contains("not a valid regex"), "{}", err.message);
}

#[test]
fn rules_read_back_as_given_and_ga4_by_its_name() {
    let given = json!([{"channel": "Paid Search", "when": {"medium": {"regex": "^(cpc|ppc|paid.*)$"}}}]);
    let set = rules(given.clone());
    assert_eq!(serde_json::to_value(&set).unwrap(), given);
    assert_eq!(serde_json::from_value::<ChannelRules>(given).unwrap(), set);
    let ga4: ChannelRules = serde_json::from_value(json!("ga4")).unwrap();
    assert_eq!(ga4, ChannelRules::ga4());
    assert_eq!(serde_json::to_value(&ga4).unwrap(), json!("ga4"));
    assert_eq!(ga4.applied().name, RuleSetName::Ga4);
    let err = serde_json::from_value::<ChannelRules>(json!([{"channel": "A", "when": {"x": {}}}])).unwrap_err();
    assert!(err.to_string().contains("channel_rules[0].when.x"), "{err}");
}

#[test]
fn a_classifier_remembers_touches_and_answers_as_the_rules_do() {
    let set = ChannelRules::ga4();
    let mut classifier = ChannelClassifier::new(set.clone());
    for _ in 0..3 {
        for (source, medium, campaign) in [("google", "cpc", ""), ("Google", "CPC", ""), ("", "", ""), ("a", "", "b")] {
            let t = touch(source, medium, campaign);
            assert_eq!(classifier.channel_index(&t), set.channel_index(&t));
        }
    }
    assert_eq!(classifier.memo.len(), 4);
    // Fields are told apart by their lengths, not by a separator they might contain.
    let (a, b) = (touch("ab", "c", ""), touch("a", "bc", ""));
    assert_ne!(classifier.channel_index(&a), u32::MAX);
    assert_ne!(classifier.channel_index(&b), u32::MAX);
    assert_eq!(classifier.memo.len(), 6);
}

/// Google Analytics 4's default channel group, a row (or more) per channel, each built from
/// the values Google's definitions name (support.google.com/analytics/answer/9756891).
#[test]
fn ga4_names_the_channel_google_documents() {
    let ga4 = ChannelRules::ga4();
    let table = [
        // (source, medium, campaign) -> channel
        (("(direct)", "(none)", ""), "Direct"),
        (("(direct)", "(not set)", ""), "Direct"),
        (("", "", ""), "Direct"),
        (("google", "cpc", "pmax_cross-network_q3"), "Cross-network"),
        (("google", "cpc", "cross-network"), "Cross-network"),
        (("amazon", "cpc", ""), "Paid Shopping"),
        (("partner", "paid", "summer_shopping"), "Paid Shopping"),
        (("Google Shopping", "ppc", ""), "Paid Shopping"),
        (("google", "cpc", "brand"), "Paid Search"),
        (("bing", "ppc", ""), "Paid Search"),
        (("duckduckgo", "retargeting", ""), "Paid Search"),
        (("facebook", "paid_social", ""), "Paid Social"),
        (("linkedin.com", "cpm", ""), "Paid Social"),
        (("youtube", "cpv", ""), "Paid Video"),
        (("vimeo.com", "paid", ""), "Paid Video"),
        (("dv360", "display", ""), "Display"),
        (("news_site", "banner", ""), "Display"),
        (("network", "interstitial", ""), "Display"),
        (("partner", "cpa", ""), "Paid Other"),
        (("partner", "paid_promo", ""), "Paid Other"),
        (("ebay", "referral", ""), "Organic Shopping"),
        (("newsletter", "referral", "black-friday-shop"), "Organic Shopping"),
        (("instagram", "referral", ""), "Organic Social"),
        (("forum", "social", ""), "Organic Social"),
        (("partner", "social network", ""), "Organic Social"),
        (("dailymotion", "referral", ""), "Organic Video"),
        (("partner", "video_embed", ""), "Organic Video"),
        (("google", "organic", ""), "Organic Search"),
        (("baidu", "referral", ""), "Organic Search"),
        (("partner", "organic", ""), "Organic Search"),
        (("example.com", "referral", ""), "Referral"),
        (("partner_app", "app", ""), "Referral"),
        (("partner", "link", ""), "Referral"),
        (("email", "newsletter", ""), "Email"),
        (("crm", "e-mail", ""), "Email"),
        (("crm", "E Mail", ""), "Email"),
        (("awin", "affiliate", ""), "Affiliates"),
        (("spotify", "audio", ""), "Audio"),
        (("sms", "text", ""), "SMS"),
        (("twilio", "sms", ""), "SMS"),
        (("onesignal", "web_push", ""), "Mobile Push Notifications"),
        (("app", "mobile_alert", ""), "Mobile Push Notifications"),
        (("app", "notification", ""), "Mobile Push Notifications"),
        (("firebase", "inapp", ""), "Mobile Push Notifications"),
        (("partner", "newsletter", ""), "Unassigned"),
        (("(direct)", "organic_social", ""), "Unassigned"),
        // Shopping campaigns need "shop" at a word start: "workshop" is not one.
        (("partner", "referral", "workshop"), "Referral"),
    ];
    let mut seen = FxHashSet::default();
    for ((source, medium, campaign), expected) in table {
        assert_eq!(channel(&ga4, source, medium, campaign), expected, "{source} / {medium} / {campaign}");
        seen.insert(expected);
    }
    let channels: FxHashSet<&str> = ga4.channels().iter().map(String::as_str).collect();
    assert_eq!(seen, channels, "every GA4 channel has a row");
    assert_eq!(channels.len(), 19, "18 channels and Unassigned: {channels:?}");
}

#[test]
fn every_site_of_googles_lists_is_its_category() {
    let ga4 = ChannelRules::ga4();
    for (file, paid, organic) in [
        (super::ga4::SEARCH_SITES, "Paid Search", "Organic Search"),
        (super::ga4::SOCIAL_SITES, "Paid Social", "Organic Social"),
        (super::ga4::SHOPPING_SITES, "Paid Shopping", "Organic Shopping"),
        (super::ga4::VIDEO_SITES, "Paid Video", "Organic Video"),
    ] {
        let sites = super::ga4::sites(file);
        assert!(sites.len() > 40, "{organic}: {}", sites.len());
        for site in sites {
            assert_eq!(channel(&ga4, site, "cpc", ""), paid, "{site}");
            assert_eq!(channel(&ga4, &site.to_uppercase(), "referral", ""), organic, "{site}");
        }
    }
}
