//! Meta's Marketing API version calendar, in one table ([`HISTORY`]), and the classification of
//! a configured `graph_api_version` against a date: current, expiring within [`WARN_DAYS`]
//! (warn), expired (refuse), or unknown to wacapi (warn).
//!
//! The Conversions API's `POST /{dataset_id}/events` is a Marketing API endpoint. Meta's
//! documents disagree on which calendar it follows (docs/meta-reference.md › Where Meta's
//! documents disagree); wacapi takes the Marketing API's, the shorter one, so a deployment is
//! told to move before either reading lets its calls fail or be auto-upgraded.
//!
//! Time is a value here: the edges (`wacapi check-config`, the dispatcher's cold start, the
//! CLI's local pipeline) pass [`Date::today`]; tests pass any date.

/// The page the table is copied from, and when it was read.
pub const SOURCE: &str = "Meta's Marketing API version history \
     (developers.facebook.com/documentation/ads-commerce/marketing-api/marketing-api-changelog/versions, \
     read 2026-12-03)";

/// A version expiring within this many days is warned about (Meta keeps a version at least 90
/// days after its successor ships, so a warning this early always leaves time to move).
pub const WARN_DAYS: i64 = 90;

/// A calendar day (UTC).
pub type Date = crate::clock::Day;

/// One row of Meta's version history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionDates {
    /// The version as it appears in the URL (`v25.0`).
    pub version: &'static str,
    /// Its release.
    pub released: Date,
    /// The Marketing API expiration date; `None` while Meta lists it as TBD.
    pub expires: Option<Date>,
}

/// Meta's Marketing API versions, newest first, as [`SOURCE`] lists them. v24.0's expiry was
/// October 6, 2026 in earlier copies of the page; the newest says November 10, 2026.
pub const HISTORY: &[VersionDates] = &[
    VersionDates {
        version: "v27.0",
        released: Date::new(2026, 11, 4),
        expires: None,
    },
    VersionDates {
        version: "v26.0",
        released: Date::new(2026, 7, 29),
        expires: None,
    },
    VersionDates {
        version: "v25.0",
        released: Date::new(2026, 2, 18),
        expires: Some(Date::new(2027, 2, 23)),
    },
    VersionDates {
        version: "v24.0",
        released: Date::new(2025, 10, 8),
        expires: Some(Date::new(2026, 11, 10)),
    },
    VersionDates {
        version: "v23.0",
        released: Date::new(2025, 5, 29),
        expires: Some(Date::new(2026, 6, 9)),
    },
    VersionDates {
        version: "v22.0",
        released: Date::new(2025, 1, 21),
        expires: Some(Date::new(2026, 2, 19)),
    },
];

/// The newest version in [`HISTORY`].
pub const NEWEST: VersionDates = HISTORY[0];

/// The oldest version in [`HISTORY`]; anything older has expired.
pub const OLDEST: VersionDates = HISTORY[HISTORY.len() - 1];

/// Where a configured version stands on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionStatus {
    /// In the table, with no expiry date yet or one more than [`WARN_DAYS`] away. A version
    /// released after the day asked about is current too: only expiry matters (a clock pinned
    /// in the past, as `wacapi demo --now` does, must not refuse today's versions).
    Current,
    /// Expires within [`WARN_DAYS`]: warn.
    Expiring {
        /// The expiry date.
        expires: Date,
        /// Days left (1 on the day before).
        days_left: i64,
    },
    /// Expired on `expires` (on that day itself too); `None` when older than every row: refuse.
    Expired {
        /// The expiry date, when the table has the version.
        expires: Option<Date>,
    },
    /// Newer than every row, or not a version of the table: wacapi has no dates for it (warn).
    Unknown,
}

/// A configured version wacapi refuses to send with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Past its Marketing API expiry.
    #[error(
        "graph_api_version {version} expired on {expires} (Meta's Marketing API version history): Meta refuses calls to it or auto-upgrades them to another version; set graph_api_version = \"{replacement}\""
    )]
    Expired {
        /// The configured version.
        version: String,
        /// Its expiry date.
        expires: Date,
        /// The version to use instead.
        replacement: &'static str,
    },
    /// Older than every version of the table (all of which it outlived).
    #[error(
        "graph_api_version {version} is older than {oldest}, the oldest Marketing API version wacapi knows, which expired on {oldest_expires}; set graph_api_version = \"{replacement}\""
    )]
    TooOld {
        /// The configured version.
        version: String,
        /// The oldest version of the table.
        oldest: &'static str,
        /// Its expiry date.
        oldest_expires: Date,
        /// The version to use instead.
        replacement: &'static str,
    },
}

/// `vMAJOR.MINOR` as numbers.
fn parse(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.strip_prefix('v')?.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Where `version` stands on `today`.
pub fn classify(version: &str, today: Date) -> VersionStatus {
    let Some(wanted) = parse(version) else {
        return VersionStatus::Unknown;
    };
    if let Some(row) = HISTORY.iter().find(|r| parse(r.version) == Some(wanted)) {
        return match row.expires {
            None => VersionStatus::Current,
            Some(expires) => match today.days_until(expires) {
                days_left if days_left <= 0 => VersionStatus::Expired {
                    expires: Some(expires),
                },
                days_left if days_left <= WARN_DAYS => {
                    VersionStatus::Expiring { expires, days_left }
                }
                _ => VersionStatus::Current,
            },
        };
    }
    match parse(OLDEST.version) {
        Some(oldest) if wanted < oldest => VersionStatus::Expired { expires: None },
        _ => VersionStatus::Unknown,
    }
}

/// The version to move to on `today`: the newest of the table already released, and not
/// itself expiring (the newest row when none qualifies, e.g. for a clock pinned in the past).
pub fn replacement(today: Date) -> &'static str {
    HISTORY
        .iter()
        .find(|r| r.released <= today && classify(r.version, today) == VersionStatus::Current)
        .map_or(NEWEST.version, |r| r.version)
}

/// Checks `version` on `today`: `Ok(None)` when current, `Ok(Some(warning))` when it expires
/// within [`WARN_DAYS`] or wacapi has no dates for it, an error when it has expired.
pub fn check(version: &str, today: Date) -> Result<Option<String>, VersionError> {
    let replacement = replacement(today);
    match classify(version, today) {
        VersionStatus::Current => Ok(None),
        VersionStatus::Expiring { expires, days_left } => Ok(Some(format!(
            "graph_api_version {version} expires on {expires}, in {days_left} day(s) (Meta's Marketing API version history): after that Meta refuses or auto-upgrades its calls and wacapi refuses to start with it; set graph_api_version = \"{replacement}\""
        ))),
        VersionStatus::Unknown => Ok(Some(format!(
            "graph_api_version {version} is not in wacapi's table of Meta's Marketing API versions ({} to {}, from {SOURCE}): wacapi has no dates for it and cannot warn before it expires; check Meta's version history, or update wacapi",
            OLDEST.version, NEWEST.version
        ))),
        VersionStatus::Expired {
            expires: Some(expires),
        } => Err(VersionError::Expired {
            version: version.to_owned(),
            expires,
            replacement,
        }),
        VersionStatus::Expired { expires: None } => Err(VersionError::TooOld {
            version: version.to_owned(),
            oldest: OLDEST.version,
            oldest_expires: OLDEST.expires.unwrap_or(OLDEST.released),
            replacement,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u8, d: u8) -> Date {
        Date::new(y, m, d)
    }

    #[test]
    fn dates_convert_both_ways() {
        assert_eq!(Date::from_unix_seconds(0), day(1970, 1, 1));
        // The sample webhooks' clock (wacapi demo --now 1750100000).
        assert_eq!(Date::from_unix_seconds(1_750_100_000), day(2025, 6, 16));
        assert_eq!(Date::from_unix_seconds(1_798_761_599), day(2026, 12, 31));
        assert_eq!(Date::from_unix_seconds(1_798_761_600), day(2027, 1, 1));
        assert_eq!(Date::from_unix_seconds(951_782_400), day(2000, 2, 29));
        assert_eq!(Date::from_unix_seconds(-1), day(1969, 12, 31));
        for seconds in (0..4_000_000_000_i64).step_by(86_400 * 13 + 7) {
            let d = Date::from_unix_seconds(seconds);
            assert_eq!(d.start(), seconds.div_euclid(86_400) * 86_400, "{d}");
        }
        assert_eq!(day(2026, 11, 25).days_until(day(2027, 2, 23)), 90);
        assert_eq!(day(2027, 2, 23).days_until(day(2027, 2, 22)), -1);
        assert_eq!(day(2027, 2, 3).to_string(), "2027-02-03");
    }

    #[test]
    fn the_table_is_newest_first_and_each_row_is_a_real_day() {
        for pair in HISTORY.windows(2) {
            assert!(parse(pair[0].version) > parse(pair[1].version), "{pair:?}");
            assert!(pair[0].released > pair[1].released, "{pair:?}");
        }
        for row in HISTORY {
            assert!(parse(row.version).is_some(), "{row:?}");
            for d in [Some(row.released), row.expires].into_iter().flatten() {
                // A real day survives the round trip through unix seconds.
                assert_eq!(Date::from_unix_seconds(d.start()), d, "{row:?}");
            }
            assert!(row.expires.is_none_or(|e| e > row.released), "{row:?}");
        }
        assert_eq!(NEWEST.version, "v27.0");
        assert_eq!(OLDEST.version, "v22.0");
    }

    #[test]
    fn the_default_version_is_in_the_table_and_current_when_it_was_read() {
        let default = crate::conversion::rules::DEFAULT_GRAPH_API_VERSION;
        assert!(HISTORY.iter().any(|r| r.version == default));
        assert_eq!(classify(default, day(2026, 12, 3)), VersionStatus::Current);
    }

    #[test]
    fn each_boundary_of_an_expiring_version() {
        // v25.0 expires 2027-02-23.
        let expires = day(2027, 2, 23);
        assert_eq!(classify("v25.0", day(2026, 11, 24)), VersionStatus::Current);
        assert_eq!(
            classify("v25.0", day(2026, 11, 25)),
            VersionStatus::Expiring {
                expires,
                days_left: 90
            }
        );
        assert_eq!(
            classify("v25.0", day(2027, 2, 22)),
            VersionStatus::Expiring {
                expires,
                days_left: 1
            }
        );
        assert_eq!(
            classify("v25.0", expires),
            VersionStatus::Expired {
                expires: Some(expires)
            }
        );
        assert_eq!(
            classify("v25.0", day(2030, 1, 1)),
            VersionStatus::Expired {
                expires: Some(expires)
            }
        );
        // v24.0 (2026-11-10) the day before and the day of.
        assert!(matches!(
            classify("v24.0", day(2026, 11, 9)),
            VersionStatus::Expiring { days_left: 1, .. }
        ));
        assert!(matches!(
            classify("v24.0", day(2026, 11, 10)),
            VersionStatus::Expired { .. }
        ));
    }

    #[test]
    fn versions_without_an_expiry_are_current_even_before_their_release() {
        for today in [day(2025, 6, 16), day(2026, 12, 3), day(2040, 1, 1)] {
            assert_eq!(classify("v27.0", today), VersionStatus::Current, "{today}");
            assert_eq!(classify("v26.0", today), VersionStatus::Current, "{today}");
        }
    }

    #[test]
    fn versions_outside_the_table() {
        let today = day(2026, 12, 3);
        assert_eq!(classify("v28.0", today), VersionStatus::Unknown);
        assert_eq!(classify("v25.5", today), VersionStatus::Unknown);
        assert_eq!(classify("latest", today), VersionStatus::Unknown);
        assert_eq!(
            classify("v21.0", today),
            VersionStatus::Expired { expires: None }
        );
        // Older than the table is expired whatever the day: every row outlived it.
        assert_eq!(
            classify("v2.12", day(2000, 1, 1)),
            VersionStatus::Expired { expires: None }
        );
        assert_eq!(classify("v25.00", today), classify("v25.0", today));
    }

    #[test]
    fn check_warns_refuses_and_names_the_replacement() {
        let today = day(2026, 12, 3);
        assert_eq!(replacement(today), "v27.0");
        assert_eq!(check("v27.0", today), Ok(None));
        let warning = check("v25.0", today).unwrap().unwrap();
        assert!(
            warning.contains("v25.0 expires on 2027-02-23, in 82 day(s)"),
            "{warning}"
        );
        assert!(
            warning.contains("graph_api_version = \"v27.0\""),
            "{warning}"
        );
        let unknown = check("v28.0", today).unwrap().unwrap();
        assert!(unknown.contains("no dates"), "{unknown}");
        let err = check("v24.0", today).unwrap_err();
        assert_eq!(
            err.to_string(),
            "graph_api_version v24.0 expired on 2026-11-10 (Meta's Marketing API version history): Meta refuses calls to it or auto-upgrades them to another version; set graph_api_version = \"v27.0\""
        );
        let err = check("v19.0", today).unwrap_err();
        assert_eq!(
            err.to_string(),
            "graph_api_version v19.0 is older than v22.0, the oldest Marketing API version wacapi knows, which expired on 2026-02-19; set graph_api_version = \"v27.0\""
        );
    }

    #[test]
    fn the_replacement_is_released_and_not_itself_expiring() {
        // In June 2025 (a pinned demo clock) v23.0 was the newest released version.
        assert_eq!(replacement(day(2025, 6, 16)), "v23.0");
        // Between v26.0's release and v27.0's.
        assert_eq!(replacement(day(2026, 9, 1)), "v26.0");
        // Before the table's first release: the newest row.
        assert_eq!(replacement(day(2024, 1, 1)), "v27.0");
    }
}
