//! A regex check's matcher: does a value match the pattern whole? A dense DFA (built once, anchored) walks the
//! value's bytes, a few nanoseconds a byte and no per-call setup; `regex::Regex` decides when the pattern's DFA
//! would be too large to build (wide Unicode classes repeated) or cannot be built (a Unicode word boundary), with
//! the same answer. The DFA is built without quit bytes, so its walk never stops short of a verdict.

use regex_automata::Anchored;
use regex_automata::dfa::{Automaton, dense};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;

/// The largest DFA built, and the most memory its construction may take; past them the pattern runs in
/// `regex::Regex`.
const DFA_LIMIT: usize = 2 << 20;

#[derive(Debug, Clone)]
pub(crate) enum WholeMatch {
    /// the DFA, and its start state (the same for every value: each is searched from its start, anchored)
    Dfa(Box<dense::DFA<Vec<u32>>>, StateID),
    Regex(regex::Regex),
}

impl WholeMatch {
    /// `pattern` as a whole-value match (`^(?:pattern)$`), in Rust's `regex` syntax.
    pub(crate) fn new(pattern: &str) -> Result<WholeMatch, regex::Error> {
        let whole = format!("^(?:{pattern})$");
        // the regex crate's verdict on the syntax, and its error messages, come first
        let re = regex::Regex::new(&whole)?;
        let config = dense::Config::new()
            .start_kind(regex_automata::dfa::StartKind::Anchored)
            .dfa_size_limit(Some(DFA_LIMIT))
            .determinize_size_limit(Some(DFA_LIMIT));
        let dfa = dense::Builder::new().configure(config).build(&whole).ok();
        // the state at a value's first byte: anchored, nothing before it (where `^` holds)
        let at_start = start::Config::new().anchored(Anchored::Yes).look_behind(None);
        match dfa.and_then(|dfa| dfa.start_state(&at_start).ok().map(|state| (dfa, state))) {
            Some((dfa, start)) => Ok(WholeMatch::Dfa(Box::new(dfa), start)),
            None => Ok(WholeMatch::Regex(re)),
        }
    }

    pub(crate) fn is_match(&self, text: &str) -> bool {
        match self {
            WholeMatch::Dfa(dfa, start) => {
                let mut state = *start;
                for &byte in text.as_bytes() {
                    state = dfa.next_state(state, byte);
                    if dfa.is_dead_state(state) {
                        return false;
                    }
                }
                dfa.is_match_state(dfa.next_eoi_state(state))
            }
            WholeMatch::Regex(re) => re.is_match(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WholeMatch;

    /// The DFA's verdicts are `regex::Regex`'s on `^(?:p)$`, for ASCII, Unicode classes, alternations, optional
    /// and empty parts, and texts around them (prefixes, suffixes, multi-byte characters, the empty text).
    #[test]
    fn the_dfa_decides_as_the_regex_crate_does() {
        let patterns = [
            "[A-Z]{4}",
            "[A-Z]{1,5}(\\.[A-Z]{2})?",
            "\\d{4}-\\d{2}-\\d{2}",
            "\\w+",
            "(?i)yes|no",
            "a*",
            "",
            "[^,]*",
            "é+|ü",
            "\\p{Greek}+",
            "x$|y",
            "(ab|a)(bc|c)?",
        ];
        let texts = [
            "",
            "ABCD",
            "ABCDE",
            "abcd",
            "AB1D",
            "BRK.B",
            "BRK.BB",
            "2024-01-31",
            "2024-1-31",
            "ᾱβγ",
            "Ωmega",
            "YES",
            "no",
            "nO ",
            "aaaa",
            "é",
            "éé",
            "ü",
            "üü",
            "x",
            "y",
            "xy",
            "abc",
            "ab",
            "a",
            "abcc",
            "123_abc",
            "a,b",
            " ABCD",
            "ABCD\n",
            "日本",
        ];
        for pattern in patterns {
            let ours = WholeMatch::new(pattern).unwrap();
            assert!(matches!(ours, WholeMatch::Dfa(..)), "{pattern} builds a DFA");
            let theirs = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
            for text in texts {
                assert_eq!(ours.is_match(text), theirs.is_match(text), "{pattern:?} on {text:?}");
            }
        }
    }

    /// A pattern whose DFA would pass the size limit, or that a DFA cannot run (a Unicode word boundary), is
    /// matched by `regex::Regex`, with the same verdicts.
    #[test]
    fn a_pattern_a_dfa_cannot_take_falls_back_to_the_regex_crate() {
        let pattern = "\\w{50}[0-9]\\w{50}";
        let ours = WholeMatch::new(pattern).unwrap();
        assert!(matches!(ours, WholeMatch::Regex(_)));
        let text = "a".repeat(50) + "7" + &"b".repeat(50);
        assert!(ours.is_match(&text));
        assert!(!ours.is_match(&text[1..]));
        let ours = WholeMatch::new("\\bAB\\b ?").unwrap();
        assert!(matches!(ours, WholeMatch::Regex(_)));
        assert!(ours.is_match("AB") && ours.is_match("AB ") && !ours.is_match("ABC"));
    }

    #[test]
    fn a_bad_pattern_is_the_regex_crates_error() {
        assert!(WholeMatch::new("[A-Z").is_err());
    }
}
