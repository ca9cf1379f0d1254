//! Conditions on event fields (`[[scenario.where]]`).

use std::borrow::Cow;

use rampart_core::Event;
use regex::Regex;

/// How a field's value is transformed before it is tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Percent-decoding (and `+` as space), applied twice to catch double encoding.
    UrlDecode,
    /// ASCII lower case.
    Lowercase,
}

/// What a condition tests.
#[derive(Debug, Clone)]
pub enum Test {
    /// Equal to one of these.
    In(Vec<String>),
    /// Equal to none of these (a missing field passes).
    NotIn(Vec<String>),
    /// Matches the regex.
    Regex(Regex),
    /// Does not match the regex (a missing field passes).
    NotRegex(Regex),
    /// A number within [min, max].
    Range(Option<f64>, Option<f64>),
    /// The field is present (non-empty).
    Present,
    /// The field is absent or empty.
    Absent,
}

/// One condition: a field, optional transforms, a test.
#[derive(Debug, Clone)]
pub struct Condition {
    /// Field name (`path`, `status`, `user`, `kind`, `source`…).
    pub field: String,
    /// Applied in order before the test.
    pub transforms: Vec<Transform>,
    /// The test.
    pub test: Test,
    /// Where the transformed value is cached while one event is selected
    /// (conditions with the same field and transforms share a slot).
    pub slot: Option<usize>,
}

impl Condition {
    /// Whether `event` satisfies the condition.
    pub fn matches(&self, event: &Event) -> bool {
        match event.field(&self.field) {
            None => self.test_value(None),
            Some(v) => self.test_value(Some(&self.transform(v))),
        }
    }

    /// Like [`matches`](Self::matches), with transformed values cached in
    /// `slots` across the conditions tested for one event.
    pub fn matches_cached(&self, event: &Event, slots: &mut [Option<Option<String>>]) -> bool {
        let Some(cell) = self.slot.and_then(|i| slots.get_mut(i)) else {
            return self.matches(event);
        };
        let cached = cell.get_or_insert_with(|| {
            event
                .field(&self.field)
                .map(|v| self.transform(v).into_owned())
        });
        self.test_value(cached.as_deref())
    }

    /// The test on a (transformed) value; `None` when the field is missing.
    fn test_value(&self, value: Option<&str>) -> bool {
        let value = match value {
            None | Some("") => {
                return matches!(self.test, Test::NotIn(_) | Test::NotRegex(_) | Test::Absent);
            }
            Some(v) => v,
        };
        match &self.test {
            Test::In(list) => list.iter().any(|x| x == value),
            Test::NotIn(list) => !list.iter().any(|x| x == value),
            Test::Regex(re) => re.is_match(value),
            Test::NotRegex(re) => !re.is_match(value),
            Test::Range(min, max) => value
                .trim()
                .parse::<f64>()
                .is_ok_and(|n| min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)),
            Test::Present => true,
            Test::Absent => false,
        }
    }

    fn transform<'a>(&self, mut value: Cow<'a, str>) -> Cow<'a, str> {
        for t in &self.transforms {
            value = match t {
                Transform::UrlDecode => {
                    let once = url_decode(&value);
                    let twice = url_decode(&once).into_owned();
                    Cow::Owned(twice)
                }
                Transform::Lowercase => {
                    if value.bytes().any(|b| b.is_ascii_uppercase()) {
                        Cow::Owned(value.to_ascii_lowercase())
                    } else {
                        value
                    }
                }
            };
        }
        value
    }
}

/// Percent-decodes `%XX` and turns `+` into a space; invalid escapes stay as
/// they are, and bytes that do not form UTF-8 become U+FFFD.
pub fn url_decode(input: &str) -> Cow<'_, str> {
    if !input.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(input);
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

use crate::http::decode::hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_decoding_handles_double_encoding_and_bad_escapes() {
        assert_eq!(url_decode("a%20b+c"), "a b c");
        assert_eq!(url_decode("%2527"), "%27");
        assert_eq!(url_decode(&url_decode("%2527")), "'");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz%4"), "%zz%4");
        assert_eq!(url_decode("%ff"), "\u{fffd}");
    }
}
