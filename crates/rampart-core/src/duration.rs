//! Durations as people write them in config files: `90s`, `10m`, `2h`,
//! `1d`, `1w`, `1h30m`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as `<n><unit>` pairs; units are `ms`, `s`, `m`, `h`,
/// `d`, `w`. Serialises back to the same form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub std::time::Duration);

impl HumanDuration {
    /// The longest duration a config may write: 100 years. Anything longer
    /// is a typo, and timestamps a duration is added to stay in range.
    pub const MAX: Self = Self::from_secs(100 * 36_525 * 864);

    /// From whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// As a chrono duration, at most [`HumanDuration::MAX`] (so that adding
    /// it to any time of this millennium cannot overflow).
    pub fn to_chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0.min(Self::MAX.0)).unwrap_or(chrono::Duration::MAX)
    }

    /// Whole seconds.
    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

/// A duration that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {reason} (write it like 90s, 10m, 2h, 1d, 1h30m)")]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            text: text.to_owned(),
            reason,
        };
        let s = text.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        let mut total_ms: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err("expected a number"));
            }
            let n: u128 = rest[..digits]
                .parse()
                .map_err(|_| err("number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let ms_per = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 604_800_000,
                "" => return Err(err("missing unit")),
                _ => return Err(err("unknown unit")),
            };
            total_ms = n
                .checked_mul(ms_per)
                .and_then(|v| total_ms.checked_add(v))
                .ok_or_else(|| err("too large"))?;
        }
        let ms = u64::try_from(total_ms).map_err(|_| err("too large"))?;
        let duration = std::time::Duration::from_millis(ms);
        if duration > Self::MAX.0 {
            return Err(err("longer than 100 years"));
        }
        Ok(Self(duration))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, per) in [
            ("w", 604_800_000u128),
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ] {
            if ms >= per {
                write!(f, "{}{unit}", ms / per)?;
                ms %= per;
            }
        }
        Ok(())
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_compound_durations() {
        let d: HumanDuration = "1h30m".parse().unwrap();
        assert_eq!(d.as_secs(), 5400);
        assert_eq!(d.to_string(), "1h30m");
        assert_eq!("10m".parse::<HumanDuration>().unwrap().as_secs(), 600);
        assert_eq!("1w".parse::<HumanDuration>().unwrap().as_secs(), 604_800);
        assert_eq!("250ms".parse::<HumanDuration>().unwrap().0.as_millis(), 250);
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "10",
            "m",
            "10x",
            "-5m",
            "99999999999999999999999d",
            "999999999d",
        ] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_century_is_the_longest_duration_and_adds_to_any_time() {
        let century: HumanDuration = "5217w".parse().unwrap();
        assert!(century <= HumanDuration::MAX);
        assert!("5218w".parse::<HumanDuration>().is_err());
        // Built in code rather than parsed, a huge duration still adds safely.
        let huge = HumanDuration(std::time::Duration::from_secs(u64::MAX / 4));
        let later = chrono::Utc::now() + huge.to_chrono();
        assert!(later > chrono::Utc::now());
    }
}
