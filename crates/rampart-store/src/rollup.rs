//! Request-log rollups, the same for both backends: bucket arithmetic, a
//! batch of records summed per bucket before it is written, which rollup
//! answers a window's top lists, and the statistics assembled from what the
//! queries return. The tables are described in `migrations/*/0004_server.sql`.

use std::collections::BTreeMap;

use crate::{Prediction, RequestFilter, RequestRecord, StoreError};

use crate::columns::{REQUEST_LOG, corrupt};

pub(crate) const MINUTE_MS: i64 = 60_000;
pub(crate) const HOUR_MS: i64 = 3_600_000;

pub(crate) const ROLLUP_MINUTE: &str = "request_rollup_minute";
pub(crate) const ROLLUP_IP: &str = "request_rollup_ip_total";
pub(crate) const ROLLUP_PATH: &str = "request_rollup_path_total";

/// Rollup rows per upsert statement, largest first (the last must be 1):
/// a few fixed sizes, so prepared statements are reused.
pub(crate) const ROLLUP_ROWS_PER_STATEMENT: [usize; 3] = [128, 16, 1];

/// The first millisecond of the bucket of `size` ms that holds `ms`.
pub(crate) fn floor_to(ms: i64, size: i64) -> i64 {
    ms - ms.rem_euclid(size)
}

/// The first bucket boundary at or after `ms`.
pub(crate) fn ceil_to(ms: i64, size: i64) -> i64 {
    let floor = floor_to(ms, size);
    if floor == ms {
        ms
    } else {
        floor.saturating_add(size)
    }
}

/// The key of `request_rollup_minute`: minute, prediction, blocked.
pub(crate) type MinuteKey = (i64, &'static str, bool);

/// Requests and the sum of their scores.
pub(crate) type Sums = (i64, f64);

/// The key of `request_rollup_minute_detail`: minute, prediction, blocked,
/// status, gateway.
pub(crate) type MinuteDetail<'a> = (i64, &'static str, bool, u16, &'a str);

/// A batch of records summed per rollup bucket, each list sorted by its key
/// (so that concurrent writers touch rows in one order).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Rollup<'a> {
    /// (minute, prediction, blocked) → (requests, score sum).
    pub minutes: Vec<(MinuteKey, Sums)>,
    /// (minute, prediction, blocked, status, gateway) → requests.
    pub details: Vec<(MinuteDetail<'a>, i64)>,
    /// (hour, client) → (requests, score sum), non-NORMAL only.
    pub client_hours: Vec<((i64, String), Sums)>,
    /// client → (requests, score sum), non-NORMAL only.
    pub clients: Vec<(String, Sums)>,
    /// (hour, path) → requests, non-NORMAL only.
    pub path_hours: Vec<((i64, &'a str), i64)>,
    /// path → requests, non-NORMAL only.
    pub paths: Vec<(&'a str, i64)>,
}

impl<'a> Rollup<'a> {
    pub(crate) fn of(records: &'a [RequestRecord]) -> Self {
        let mut minutes: BTreeMap<MinuteKey, Sums> = BTreeMap::new();
        let mut details: BTreeMap<MinuteDetail<'a>, i64> = BTreeMap::new();
        let mut client_hours: BTreeMap<(i64, String), Sums> = BTreeMap::new();
        let mut path_hours: BTreeMap<(i64, &'a str), i64> = BTreeMap::new();
        for r in records {
            let ms = crate::columns::to_ms(r.time);
            let minute = floor_to(ms, MINUTE_MS);
            let prediction = r.prediction.as_str();
            let slot = minutes.entry((minute, prediction, r.blocked)).or_default();
            slot.0 += 1;
            slot.1 += r.score;
            *details
                .entry((minute, prediction, r.blocked, r.status, r.gateway.as_str()))
                .or_default() += 1;
            if r.prediction != Prediction::Normal {
                let hour = floor_to(ms, HOUR_MS);
                let slot = client_hours
                    .entry((hour, r.client.to_string()))
                    .or_default();
                slot.0 += 1;
                slot.1 += r.score;
                *path_hours.entry((hour, r.path.as_str())).or_default() += 1;
            }
        }
        let mut clients: BTreeMap<String, Sums> = BTreeMap::new();
        for ((_, client), (requests, score_sum)) in &client_hours {
            let slot = clients.entry(client.clone()).or_default();
            slot.0 += requests;
            slot.1 += score_sum;
        }
        let mut paths: BTreeMap<&'a str, i64> = BTreeMap::new();
        for ((_, path), requests) in &path_hours {
            *paths.entry(path).or_default() += requests;
        }
        Self {
            minutes: minutes.into_iter().collect(),
            details: details.into_iter().collect(),
            client_hours: client_hours.into_iter().collect(),
            clients: clients.into_iter().collect(),
            path_hours: path_hours.into_iter().collect(),
            paths: paths.into_iter().collect(),
        }
    }
}

/// Where a window's top lists come from, given the first hour of the window
/// and the oldest and newest hours the hourly rollups hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopSource {
    /// No hour of the window is stored: empty lists.
    Nothing,
    /// Every stored hour is in the window: the totals tables, first rows of
    /// their rank index.
    Totals,
    /// A few stored hours lie before the window (`hour <` the value): the
    /// totals less those hours, one pass over the totals.
    TotalsLessBefore(i64),
    /// Most stored hours lie before the window: the hourly rows of the
    /// window (`hour >=` the value), summed.
    Window(i64),
}

impl TopSource {
    pub(crate) fn choose(since_ms: i64, oldest: Option<i64>, newest: Option<i64>) -> Self {
        let first = floor_to(since_ms, HOUR_MS);
        let (Some(oldest), Some(newest)) = (oldest, newest) else {
            return TopSource::Nothing;
        };
        if newest < first {
            TopSource::Nothing
        } else if oldest >= first {
            TopSource::Totals
        } else if (first - oldest) / HOUR_MS <= (newest - first) / HOUR_MS + 1 {
            TopSource::TotalsLessBefore(first)
        } else {
            TopSource::Window(first)
        }
    }
}

/// Where the number of request-log records matching a filter is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CountFrom {
    /// A client or path filter: counted in the log, on the client index or
    /// the filters' indexes.
    Log,
    /// Only time, prediction and blocked: `request_rollup_minute` (whole
    /// minutes) plus the partial first minute counted in the log.
    Minute,
    /// Status or gateway too: `request_rollup_minute_detail`, likewise.
    Detail,
}

impl CountFrom {
    pub(crate) fn of(filter: &RequestFilter) -> Self {
        if filter.client.is_some() || filter.path_prefix.is_some() {
            CountFrom::Log
        } else if filter.status.is_some() || filter.gateway.is_some() {
            CountFrom::Detail
        } else {
            CountFrom::Minute
        }
    }
}

/// A count read back from SQL (never negative unless the row is corrupt).
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(crate) fn prediction(table: &'static str, name: &str) -> Result<Prediction, StoreError> {
    Prediction::from_name(name).ok_or_else(|| corrupt(table, format!("prediction {name:?}")))
}

/// Totals of a window from per-(prediction, blocked) sums (the whole
/// minutes' and the partial first minute's): total, blocked, score sum and
/// the requests per prediction (those with any, in declaration order).
pub(crate) struct Totals {
    pub total: u64,
    pub blocked: u64,
    pub score_sum: f64,
    pub by_prediction: Vec<(Prediction, u64)>,
}

impl Totals {
    pub(crate) fn of(
        rows: impl IntoIterator<Item = (String, bool, i64, f64)>,
    ) -> Result<Self, StoreError> {
        let order = [
            Prediction::Normal,
            Prediction::Ddos,
            Prediction::Attack,
            Prediction::Blocked,
        ];
        let mut per = [0u64; 4];
        let mut totals = Totals {
            total: 0,
            blocked: 0,
            score_sum: 0.0,
            by_prediction: Vec::new(),
        };
        for (name, blocked, requests, score_sum) in rows {
            let p = prediction(REQUEST_LOG, &name)?;
            let n = count(requests);
            totals.total += n;
            if blocked {
                totals.blocked += n;
            }
            totals.score_sum += score_sum;
            if let Some(i) = order.iter().position(|&o| o == p) {
                per[i] += n;
            }
        }
        totals.by_prediction = order.into_iter().zip(per).filter(|&(_, n)| n > 0).collect();
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn buckets_floor_and_ceil() {
        assert_eq!(floor_to(0, MINUTE_MS), 0);
        assert_eq!(floor_to(59_999, MINUTE_MS), 0);
        assert_eq!(floor_to(60_000, MINUTE_MS), 60_000);
        assert_eq!(floor_to(-1, MINUTE_MS), -60_000);
        assert_eq!(ceil_to(0, MINUTE_MS), 0);
        assert_eq!(ceil_to(1, MINUTE_MS), 60_000);
        assert_eq!(ceil_to(-1, MINUTE_MS), 0);
        assert_eq!(ceil_to(i64::MAX, MINUTE_MS), i64::MAX);
    }

    #[test]
    fn top_source_picks_the_cheaper_rollup() {
        let h = HOUR_MS;
        assert_eq!(TopSource::choose(5 * h, None, None), TopSource::Nothing);
        assert_eq!(
            TopSource::choose(5 * h + 1, Some(h), Some(4 * h)),
            TopSource::Nothing
        );
        assert_eq!(
            TopSource::choose(5 * h + 1, Some(5 * h), Some(9 * h)),
            TopSource::Totals
        );
        assert_eq!(
            TopSource::choose(5 * h + 1, Some(4 * h), Some(9 * h)),
            TopSource::TotalsLessBefore(5 * h)
        );
        assert_eq!(
            TopSource::choose(9 * h, Some(0), Some(9 * h)),
            TopSource::Window(9 * h)
        );
    }

    #[test]
    fn a_batch_is_summed_per_bucket() {
        let record = |ms: i64, client: &str, path: &str, prediction: Prediction| RequestRecord {
            time: DateTime::from_timestamp_millis(ms).expect("time"),
            gateway: "gw".into(),
            request_id: "r".into(),
            client: client.parse().expect("ip"),
            method: "GET".into(),
            path: path.into(),
            user_agent: None,
            status: 200,
            request_bytes: 0,
            response_bytes: 0,
            latency_ms: 0.0,
            score: 0.5,
            prediction,
            blocked: false,
            reason: None,
            backend: None,
        };
        let records = [
            record(HOUR_MS + 1, "10.0.0.2", "/a", Prediction::Ddos),
            record(HOUR_MS + 2, "10.0.0.2", "/a", Prediction::Ddos),
            record(2 * HOUR_MS, "10.0.0.2", "/b", Prediction::Attack),
            record(HOUR_MS, "10.0.0.1", "/", Prediction::Normal),
        ];
        let rollup = Rollup::of(&records);
        assert_eq!(
            rollup.minutes,
            vec![
                ((HOUR_MS, "DDoS", false), (2, 1.0)),
                ((HOUR_MS, "NORMAL", false), (1, 0.5)),
                ((2 * HOUR_MS, "ATTACK", false), (1, 0.5)),
            ]
        );
        assert_eq!(
            rollup.client_hours,
            vec![
                ((HOUR_MS, "10.0.0.2".to_owned()), (2, 1.0)),
                ((2 * HOUR_MS, "10.0.0.2".to_owned()), (1, 0.5)),
            ]
        );
        assert_eq!(rollup.clients, vec![("10.0.0.2".to_owned(), (3, 1.5))]);
        assert_eq!(
            rollup.path_hours,
            vec![((HOUR_MS, "/a"), 2), ((2 * HOUR_MS, "/b"), 1)]
        );
        assert_eq!(rollup.paths, vec![("/a", 2), ("/b", 1)]);
        assert_eq!(
            rollup.details,
            vec![
                ((HOUR_MS, "DDoS", false, 200, "gw"), 2),
                ((HOUR_MS, "NORMAL", false, 200, "gw"), 1),
                ((2 * HOUR_MS, "ATTACK", false, 200, "gw"), 1),
            ]
        );
    }
}
