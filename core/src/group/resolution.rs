//! The topics a KIP-848 group subscribes to, read from the catalog: its
//! members' topic names and what their regular expressions match.
//!
//! Owns: each pattern the members subscribe with, compiled, and the topic
//! names it matched; every subscribed topic as the catalog knew it when
//! last read ([`Resolution::topic`], what the assignors assign from); and
//! the catalog version it was read at, so that a group reads it again only
//! when it moved.
//!
//! Invariants: a pattern matches a whole topic name (as Kafka's
//! `matcher(topic).matches()`), in RE2 syntax, the syntax of Kafka's RE2/J,
//! internal topics included, as Kafka's (there is no authorizer to filter
//! them by). Patterns no member uses are dropped at the next read; a
//! pattern whose compiled form would take more than 1 MiB is refused. A
//! read costs one lookup per subscribed topic and one match per pattern
//! and topic, and happens only when the catalog's version moved or a
//! subscription changed.

use std::collections::{BTreeMap, BTreeSet};

use regex::{Regex, RegexBuilder};

use super::topics::{TopicCatalog, TopicInfo};

/// One member's subscription: its topic names and its pattern, if any.
pub(crate) type Subscription<'a> = (&'a BTreeSet<String>, Option<&'a str>);

/// What a read of the catalog found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// Nothing to read: the catalog has not moved since.
    Skipped,
    /// The subscribed topics are as they were.
    Same,
    /// A subscribed topic was created, deleted or grown, or a pattern
    /// matches other topics now.
    Moved,
    /// The first read since the group was made or loaded: nothing to
    /// compare with.
    First,
}

#[derive(Debug, Clone)]
struct Pattern {
    regex: Regex,
    matched: BTreeSet<String>,
}

/// A group's subscribed topics, as the catalog knew them when last read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolution {
    patterns: BTreeMap<String, Pattern>,
    topics: BTreeMap<String, Option<TopicInfo>>,
    /// `None`: not read since the group was made or loaded.
    version: Option<u64>,
}

/// The most memory one pattern's compiled program, and its matching
/// cache, may take: a pattern that needs more is refused.
const PATTERN_MEMORY_BYTES: usize = 1 << 20;

/// `pattern` compiled to match whole topic names, or Kafka's refusal
/// message for it, with RE2's words for what is wrong.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    let built = RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(PATTERN_MEMORY_BYTES)
        .dfa_size_limit(PATTERN_MEMORY_BYTES)
        .build();
    built.map_err(|e| {
        let reason = match regex_syntax::ast::parse::Parser::new().parse(pattern) {
            Err(syntax) => re2_description(syntax.kind()),
            // Parsed, but not compiled (too large, or not valid UTF-8).
            Ok(_) => e.to_string().trim_end_matches('.').to_owned(),
        };
        format!("SubscribedTopicRegex `{pattern}` is not a valid regular expression: {reason}.")
    })
}

/// What RE2 (Kafka's RE2/J) says of a pattern with this mistake.
fn re2_description(kind: &regex_syntax::ast::ErrorKind) -> String {
    use regex_syntax::ast::ErrorKind as K;
    let words = match kind {
        K::ClassUnclosed => "missing closing ]",
        K::GroupUnclosed => "missing closing )",
        // RE2/J's words for it, as Kafka answers them.
        K::GroupUnopened => "regexp/syntax: internal error",
        K::RepetitionMissing => "missing argument to repetition operator",
        K::EscapeUnexpectedEof => "trailing backslash at end of expression",
        K::EscapeUnrecognized
        | K::EscapeHexEmpty
        | K::EscapeHexInvalid
        | K::EscapeHexInvalidDigit
        | K::ClassEscapeInvalid => "invalid escape sequence",
        K::ClassRangeInvalid | K::ClassRangeLiteral => "invalid character class range",
        K::RepetitionCountInvalid
        | K::RepetitionCountDecimalEmpty
        | K::RepetitionCountUnclosed
        | K::DecimalEmpty
        | K::DecimalInvalid => "invalid repeat count",
        K::GroupNameDuplicate { .. }
        | K::GroupNameEmpty
        | K::GroupNameInvalid
        | K::GroupNameUnexpectedEof => "invalid named capture",
        K::UnsupportedLookAround
        | K::UnsupportedBackreference
        | K::FlagUnrecognized
        | K::FlagDanglingNegation
        | K::FlagDuplicate { .. }
        | K::FlagRepeatedNegation { .. }
        | K::FlagUnexpectedEof => "invalid or unsupported Perl syntax",
        K::UnicodeClassInvalid => "invalid character class",
        other => return other.to_string(),
    };
    words.to_owned()
}

impl Resolution {
    /// The topics `pattern` matched at the last read (none if it was not
    /// read yet, or does not compile).
    pub(crate) fn matched(&self, pattern: &str) -> Option<&BTreeSet<String>> {
        self.patterns.get(pattern).map(|p| &p.matched)
    }

    /// One member's topics: its names, and what its pattern matched at the
    /// last read.
    pub(crate) fn topics_of<'a>(
        &'a self,
        (names, pattern): Subscription<'a>,
    ) -> impl Iterator<Item = &'a String> + 'a {
        let matched = pattern.and_then(|p| self.matched(p));
        names.iter().chain(matched.into_iter().flatten())
    }

    /// A subscribed topic as the last read found it.
    pub(crate) fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.topics.get(name).copied().flatten()
    }

    /// Every subscribed topic that exists, as the last read found them.
    pub(crate) fn existing(&self) -> impl Iterator<Item = TopicInfo> + '_ {
        self.topics.values().flatten().copied()
    }

    /// Reads the catalog again when its version moved since the last read,
    /// or when `subscriptions_changed`: matches the patterns in use again
    /// and looks up every subscribed topic.
    pub(crate) fn read<'a>(
        &mut self,
        catalog: &dyn TopicCatalog,
        subscriptions: impl Iterator<Item = Subscription<'a>> + Clone,
        subscriptions_changed: bool,
    ) -> Read {
        let version = catalog.version();
        if !subscriptions_changed && self.version == Some(version) {
            return Read::Skipped;
        }
        let moved = self.version != Some(version);
        let in_use: BTreeSet<&str> = subscriptions.clone().filter_map(|(_, p)| p).collect();
        self.patterns.retain(|p, _| in_use.contains(p.as_str()));
        for pattern in in_use {
            let regex = match self.patterns.get(pattern) {
                Some(_) if !moved => continue,
                Some(known) => known.regex.clone(),
                None => match compile(pattern) {
                    Ok(regex) => regex,
                    // Refused when it was subscribed with; one restored
                    // from another broker's records matches nothing.
                    Err(_) => continue,
                },
            };
            let mut matched = BTreeSet::new();
            catalog.for_each_name(&mut |name| {
                if regex.is_match(name) {
                    matched.insert(name.to_owned());
                }
            });
            self.patterns
                .insert(pattern.to_owned(), Pattern { regex, matched });
        }
        let mut topics = BTreeMap::new();
        for subscription in subscriptions {
            for name in self.topics_of(subscription) {
                if !topics.contains_key(name) {
                    topics.insert(name.clone(), catalog.topic(name));
                }
            }
        }
        let first = self.version.is_none();
        let same = topics == self.topics;
        self.topics = topics;
        self.version = Some(version);
        match (first, same) {
            (true, _) => Read::First,
            (false, true) => Read::Same,
            (false, false) => Read::Moved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::topics::TopicTable;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn patterns_match_whole_names_internal_ones_too() {
        let catalog = TopicTable::of(&[
            ("orders", [1; 16], 2),
            ("orders-eu", [2; 16], 1),
            ("old-orders", [3; 16], 1),
            ("__consumer_offsets", [4; 16], 50),
        ]);
        let mut r = Resolution::default();
        let none = set(&[]);
        let subs = [(&none, Some("orders.*")), (&none, Some(".*"))];
        assert_eq!(r.read(&catalog, subs.iter().copied(), true), Read::First);
        assert_eq!(r.matched("orders.*"), Some(&set(&["orders", "orders-eu"])));
        assert_eq!(
            r.matched(".*"),
            Some(&set(&[
                "__consumer_offsets",
                "old-orders",
                "orders",
                "orders-eu"
            ]))
        );
        assert_eq!(r.topic("orders").map(|t| t.partitions), Some(2));
    }

    #[test]
    fn a_read_sees_topics_created_grown_and_deleted() {
        let mut catalog = TopicTable::of(&[("a", [1; 16], 1)]);
        let names = set(&["a", "b"]);
        let none = set(&[]);
        let subs = [(&names, None), (&none, Some("c.*"))];
        let mut r = Resolution::default();
        assert_eq!(r.read(&catalog, subs.iter().copied(), false), Read::First);
        assert_eq!(r.read(&catalog, subs.iter().copied(), false), Read::Skipped);
        // Something else in the catalog changed: read, nothing moved.
        catalog.set(
            "zzz",
            TopicInfo {
                id: [9; 16],
                partitions: 1,
            },
        );
        assert_eq!(r.read(&catalog, subs.iter().copied(), false), Read::Same);
        catalog.set(
            "b",
            TopicInfo {
                id: [2; 16],
                partitions: 1,
            },
        );
        assert_eq!(r.read(&catalog, subs.iter().copied(), false), Read::Moved);
        catalog.set(
            "a",
            TopicInfo {
                id: [1; 16],
                partitions: 3,
            },
        );
        assert_eq!(r.read(&catalog, subs.iter().copied(), false), Read::Moved);
        catalog.set(
            "c1",
            TopicInfo {
                id: [3; 16],
                partitions: 1,
            },
        );
        assert_eq!(r.read(&catalog, subs.iter().copied(), false), Read::Moved);
        assert_eq!(r.existing().count(), 3);
        catalog.remove("a");
        assert_eq!(r.read(&catalog, subs.iter().copied(), false), Read::Moved);
        assert_eq!(r.topic("a"), None);
        assert_eq!(r.existing().count(), 2);
    }

    #[test]
    fn patterns_no_one_uses_are_dropped() {
        let catalog = TopicTable::of(&[("a", [1; 16], 1)]);
        let none = set(&[]);
        let mut r = Resolution::default();
        r.read(&catalog, [(&none, Some("a"))].into_iter(), true);
        assert!(r.matched("a").is_some());
        r.read(&catalog, [(&none, Some("b"))].into_iter(), true);
        assert!(r.matched("a").is_none());
        assert!(r.matched("b").is_some_and(|m| m.is_empty()));
    }

    #[test]
    fn a_pattern_that_does_not_compile_is_refused_with_kafkas_words() {
        // Kafka's own test's case, word for word.
        assert_eq!(
            compile("[").unwrap_err(),
            "SubscribedTopicRegex `[` is not a valid regular expression: missing closing ]."
        );
        for (pattern, words) in [
            ("(a", "missing closing )"),
            ("a)", "regexp/syntax: internal error"),
            ("*a", "missing argument to repetition operator"),
            ("a\\", "trailing backslash at end of expression"),
            ("[z-a]", "invalid character class range"),
            ("(?=a)", "invalid or unsupported Perl syntax"),
        ] {
            let refused = compile(pattern).unwrap_err();
            assert!(
                refused.ends_with(&format!(": {words}.")),
                "{pattern}: {refused}"
            );
        }
        assert!(compile("a|b").is_ok_and(|r| r.is_match("b") && !r.is_match("ab")));
        let huge = compile("(\\w{100}){100}").unwrap_err();
        assert!(
            huge.contains("exceeds size limit") && !huge.ends_with(".."),
            "{huge}"
        );
    }
}
