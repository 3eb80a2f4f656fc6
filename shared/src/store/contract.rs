//! The contract every [`DispatchStore`] keeps, as checks a store's tests run against it: the
//! in-memory store (`shared/tests/store.rs`), DynamoDB on moto
//! (`tests/tests/store_contract_aws.rs`) and the CLI's SQLite database (`cli/src/durable.rs`).
//! One set of checks instead of one test per store keeps the three from drifting apart on the
//! dedup decision ([`crate::store::ledger`]) or on which click wins.
//!
//! A check fails with a panic naming the rule the store broke, so this module is for tests
//! only. It is compiled with the library rather than behind a cargo feature: every check is
//! generic over the store, so no product binary instantiates one and none adds a byte to the
//! Lambda functions or the CLI, while each crate's tests reach the checks without a feature to
//! turn on.
//!
//! Each check uses ids and keys of its own (prefixed by its name), so the checks can run one
//! after another on one store, as [`all`] does, or each on a fresh one. The times are around
//! [`NOW`] and never an hour past it: a store may purge what expires, but must keep clicks at
//! least an hour after they were made.

use std::collections::{BTreeMap, HashMap};

use crate::conversion::clicks::{Click, ClickStore, StoreError, click_id_key, user_key};
use crate::model::{Channel, Destination};
use crate::report::{FactKey, Tally};
use crate::signal::UserRef;
use crate::store::ledger::{Claim, ClaimRequest, SentMark};
use crate::store::{BatchClicks, ClickWrite, DispatchStore};

/// The unix time the checks run at (a day in 2026).
pub const NOW: i64 = 1_780_000_000;

/// How long a claim of the checks holds its event (seconds).
const LEASE: i64 = 30;

/// When the checks' ledger records may be deleted: eight days on, as the dispatcher keeps them.
const EXPIRES_AT: i64 = NOW + 8 * 86_400;

/// Runs every check of the contract on `store`, one after another; `report` reads the store's
/// report aggregates back (each store has its own reader: [`crate::store::MemoryStore::report`],
/// [`crate::aws::report::read_report`], the CLI database's `report`).
pub async fn all<S, R>(store: &S, report: R)
where
    S: DispatchStore,
    R: AsyncFn() -> Vec<(FactKey, Tally)>,
{
    claims(store).await;
    lease_expiry(store).await;
    release(store).await;
    newest_click_wins(store).await;
    clicks_by_key(store).await;
    click_lookups(store).await;
    report_counts(store, report).await;
}

/// A new event is claimed; claimed again while its lease holds (to its last second,
/// `lease_until == now`) it is leased; once marked sent it is a dedup hit, long after any lease;
/// one commit answers each of several claims, in order.
pub async fn claims<S: DispatchStore>(store: &S) {
    let (event, fresh, held) = ("claims/event", "claims/fresh", "claims/held");
    let answers = commit(store, &[], &[claim(event, NOW)], NOW).await;
    assert_eq!(answers, [Claim::Claimed], "a new event is claimed");
    let answers = commit(store, &[], &[claim(event, NOW + 1)], NOW + 1).await;
    assert_eq!(answers, [Claim::Leased], "a claimed event is leased");
    let at_end = NOW + LEASE;
    let answers = commit(store, &[], &[claim(event, at_end)], at_end).await;
    assert_eq!(
        answers,
        [Claim::Leased],
        "a lease holds to its last second (lease_until == now)"
    );
    ok(store.mark_sent(&[mark(event)], &[]).await, "mark_sent");
    let answers = commit(store, &[], &[claim(event, NOW + 2)], NOW + 2).await;
    assert_eq!(answers, [Claim::AlreadySent], "a sent event is a dedup hit");
    let late = NOW + 10 * LEASE;
    let answers = commit(store, &[], &[claim(event, late)], late).await;
    assert_eq!(
        answers,
        [Claim::AlreadySent],
        "a sent event stays sent once its lease would have run out"
    );
    let answers = commit(store, &[], &[claim(held, NOW)], NOW).await;
    assert_eq!(answers, [Claim::Claimed], "a new event is claimed");
    let batch = [
        claim(event, NOW + 3),
        claim(fresh, NOW + 3),
        claim(held, NOW + 3),
    ];
    let answers = commit(store, &[], &batch, NOW + 3).await;
    assert_eq!(
        answers,
        [Claim::AlreadySent, Claim::Claimed, Claim::Leased],
        "one commit answers each claim, in order (sent, fresh, leased)"
    );
}

/// A claim whose lease ran out (`lease_until < now`: the invocation holding it crashed or timed
/// out) is claimed again, with a lease of its own; a refused claim does not extend the lease it
/// met.
pub async fn lease_expiry<S: DispatchStore>(store: &S) {
    let event = "lease/event";
    let answers = commit(store, &[], &[claim(event, NOW)], NOW).await;
    assert_eq!(answers, [Claim::Claimed], "a new event is claimed");
    let answers = commit(store, &[], &[claim(event, NOW + 5)], NOW + 5).await;
    assert_eq!(answers, [Claim::Leased], "a claimed event is leased");
    let expired = NOW + LEASE + 1;
    let answers = commit(store, &[], &[claim(event, expired)], expired).await;
    assert_eq!(
        answers,
        [Claim::Claimed],
        "a claim whose lease ran out (lease_until < now) is claimed again, and a refused claim \
         did not extend it"
    );
    let answers = commit(store, &[], &[claim(event, expired + 1)], expired + 1).await;
    assert_eq!(
        answers,
        [Claim::Leased],
        "a claim taken over after its lease ran out holds a lease of its own"
    );
}

/// A release drops pending claims only: a released event is claimed again at once, a sent mark
/// survives a release, and an id the store never saw is no error.
pub async fn release<S: DispatchStore>(store: &S) {
    let (pending, sent) = ("release/pending", "release/sent");
    let answers = commit(store, &[], &[claim(pending, NOW), claim(sent, NOW)], NOW).await;
    assert_eq!(
        answers,
        [Claim::Claimed, Claim::Claimed],
        "new events are claimed"
    );
    ok(store.mark_sent(&[mark(sent)], &[]).await, "mark_sent");
    let ids = [pending, sent, "release/unknown"].map(String::from);
    ok(
        store.release(&ids).await,
        "release (an unknown id among them)",
    );
    let again = [claim(pending, NOW + 1), claim(sent, NOW + 1)];
    let answers = commit(store, &[], &again, NOW + 1).await;
    assert_eq!(
        answers,
        [Claim::Claimed, Claim::AlreadySent],
        "a released claim is claimed again at once, and a release never drops a sent mark"
    );
}

/// The newest click wins per key: an older click recorded later does not replace a newer one, a
/// click as new as the stored one replaces it ([`Click::supersedes`]), and a newer one replaces
/// it, also when written in the commit that claims events.
pub async fn newest_click_wins<S: DispatchStore>(store: &S) {
    let key = "newest/key";
    commit(store, &[write(key, whatsapp("new", NOW))], &[], NOW).await;
    commit(store, &[write(key, whatsapp("old", NOW - 100))], &[], NOW).await;
    assert_eq!(
        read(store, key).await,
        Some(whatsapp("new", NOW)),
        "an older click recorded later does not replace a newer one"
    );
    commit(store, &[write(key, whatsapp("tie", NOW))], &[], NOW).await;
    assert_eq!(
        read(store, key).await,
        Some(whatsapp("tie", NOW)),
        "a click as new as the stored one replaces it (Click::supersedes)"
    );
    let newer = whatsapp("newer", NOW + 50);
    let claims = [claim("newest/event", NOW + 50)];
    let answers = commit(store, &[write(key, newer.clone())], &claims, NOW + 50).await;
    assert_eq!(
        answers,
        [Claim::Claimed],
        "a new event is claimed beside a click"
    );
    assert_eq!(
        read(store, key).await,
        Some(newer),
        "a newer click replaces the stored one, in the commit that claims events too"
    );
}

/// One read returns every stored click among the keys asked, each as written: absent keys are
/// left out, a key asked twice is answered once, and a click replacing another keeps none of the
/// other's optional fields (click id, ad, channel, platform).
pub async fn clicks_by_key<S: DispatchStore>(store: &S) {
    let messenger = Click {
        ctwa_clid: None,
        ad_id: Some("ad-messenger".into()),
        clicked_at: NOW + 1,
        channel: Channel::Messenger,
        destination: Destination::Meta,
    };
    let tiktok = Click {
        ctwa_clid: None,
        ad_id: None,
        clicked_at: NOW + 2,
        channel: Channel::Whatsapp,
        destination: Destination::TikTok,
    };
    let first = [
        write("read/a", whatsapp("a", NOW)),
        write("read/b", messenger.clone()),
        write("read/c", whatsapp("c", NOW)),
    ];
    commit(store, &first, &[], NOW).await;
    commit(store, &[write("read/c", tiktok.clone())], &[], NOW + 2).await;
    let keys = ["read/a", "read/b", "read/c", "read/absent", "read/a"].map(String::from);
    let found = ok(store.clicks(&keys).await, "clicks");
    let expected = HashMap::from([
        ("read/a".to_owned(), whatsapp("a", NOW)),
        ("read/b".to_owned(), messenger),
        ("read/c".to_owned(), tiktok),
    ]);
    assert_eq!(
        found, expected,
        "one read returns each stored click as written (absent keys left out, a replaced click's \
         optional fields gone)"
    );
}

/// The dispatcher's lookups through [`BatchClicks`] over the store: a click recorded in one batch
/// under a user's identities and its click id is found by a later batch through any one
/// identity (the newest across them) and by its click id, under its own account only.
pub async fn click_lookups<S: DispatchStore>(store: &S) {
    let account = "lookups-account";
    let user = UserRef {
        bsuid: Some("lookups-bsuid".into()),
        ph: Some("lookups-phone-hash".into()),
        ..UserRef::default()
    };
    let phone_only = UserRef {
        bsuid: None,
        ..user.clone()
    };
    let first = whatsapp("lookups-first", NOW);
    let batch = BatchClicks::new(store, &[], Ok(HashMap::new()));
    ok(batch.record(account, &user, &first).await, "record");
    ok(
        batch.record_click_id(account, &first).await,
        "record_click_id",
    );
    commit(store, &batch.take_writes(), &[], NOW).await;
    let later = whatsapp("lookups-later", NOW + 10);
    let batch = BatchClicks::new(store, &[], Ok(HashMap::new()));
    ok(batch.record(account, &phone_only, &later).await, "record");
    commit(store, &batch.take_writes(), &[], NOW + 10).await;

    let clid_key = click_id_key(account, "lookups-first");
    let keys: Vec<String> = user
        .keys()
        .map(|k| user_key(account, k))
        .chain([clid_key])
        .collect();
    let read = store.clicks(&keys).await;
    let batch = BatchClicks::new(store, &keys, read);
    let bsuid_only = UserRef {
        ph: None,
        ..user.clone()
    };
    let found = ok(batch.latest(account, &bsuid_only).await, "latest");
    assert_eq!(
        found,
        Some(first.clone()),
        "a click is found by one identity"
    );
    let found = ok(batch.latest(account, &user).await, "latest");
    assert_eq!(
        found,
        Some(later),
        "the newest click across a user's identities wins"
    );
    let found = ok(
        batch.by_click_id(account, "lookups-first").await,
        "by_click_id",
    );
    assert_eq!(found, Some(first), "a click is found by its click id");
    let found = ok(
        batch.by_click_id("other", "lookups-first").await,
        "by_click_id",
    );
    assert_eq!(
        found, None,
        "a click id is looked up under its account only"
    );
}

/// The report's counts are written with the marks of their events and add up: two batches
/// counting under one key read back as their sum (the count, the value to the cent, each match
/// key's count), another key apart with its empty fields, and a mark without counts counts
/// nothing. The events marked are sent.
pub async fn report_counts<S, R>(store: &S, report: R)
where
    S: DispatchStore,
    R: AsyncFn() -> Vec<(FactKey, Tally)>,
{
    let account = "report-account";
    let sent = FactKey {
        day: "2026-06-01".into(),
        outcome: crate::report::SENT.into(),
        destination: "meta".into(),
        channel: "whatsapp".into(),
        account: account.into(),
        ad_id: "ad-1".into(),
        rule: "order-purchase".into(),
        event_name: "Purchase".into(),
        currency: "USD".into(),
    };
    // A skip before attribution: no destination, ad, rule, event or currency.
    let skipped = FactKey {
        day: "2026-06-01".into(),
        outcome: "no_rule".into(),
        channel: "whatsapp".into(),
        account: account.into(),
        ..FactKey::default()
    };
    let batch = Tally {
        count: 2,
        value: 0.1 + 0.2,
        keys: BTreeMap::from([("ctwa_clid".to_owned(), 2), ("ph".to_owned(), 1)]),
    };
    let skip = Tally {
        count: 1,
        ..Tally::default()
    };
    let ids = ["report/a", "report/b", "report/c", "report/d", "report/e"];
    let first = [mark(ids[0]), mark(ids[1])];
    ok(
        store
            .mark_sent(&first, &[(sent.clone(), batch.clone())])
            .await,
        "mark_sent",
    );
    let second = [mark(ids[2]), mark(ids[3])];
    let counts = [(sent.clone(), batch), (skipped.clone(), skip.clone())];
    ok(store.mark_sent(&second, &counts).await, "mark_sent");
    ok(store.mark_sent(&[mark(ids[4])], &[]).await, "mark_sent");

    let mut found: Vec<(FactKey, Tally)> = report()
        .await
        .into_iter()
        .filter(|(key, _)| key.account == account)
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let sum = Tally {
        count: 4,
        value: 0.6,
        keys: BTreeMap::from([("ctwa_clid".to_owned(), 4), ("ph".to_owned(), 2)]),
    };
    let mut expected = vec![(sent, sum), (skipped, skip)];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        found, expected,
        "report counts are added with their marks and read back summed (value to the cent)"
    );
    let claims: Vec<ClaimRequest> = ids.iter().map(|id| claim(id, NOW)).collect();
    let answers = commit(store, &[], &claims, NOW).await;
    assert_eq!(
        answers,
        [Claim::AlreadySent; 5],
        "the events marked with counts, and without, are sent"
    );
}

/// A claim of `event_id` made at `now`.
fn claim(event_id: &str, now: i64) -> ClaimRequest {
    ClaimRequest {
        event_id: event_id.into(),
        lease_until: now + LEASE,
        expires_at: EXPIRES_AT,
    }
}

/// The sent mark of `event_id`.
fn mark(event_id: &str) -> SentMark {
    SentMark {
        event_id: event_id.into(),
        fbtrace_id: Some("trace".into()),
        sent_at: NOW,
        expires_at: EXPIRES_AT,
    }
}

/// A Click-to-WhatsApp click with every optional field set.
fn whatsapp(ctwa_clid: &str, clicked_at: i64) -> Click {
    Click {
        ctwa_clid: Some(ctwa_clid.into()),
        ad_id: Some(format!("ad-{ctwa_clid}")),
        clicked_at,
        channel: Channel::Whatsapp,
        destination: Destination::Meta,
    }
}

/// `click` to keep under `key`.
fn write(key: &str, click: Click) -> ClickWrite {
    ClickWrite {
        key: key.into(),
        click,
    }
}

/// The click stored under `key`, read alone.
async fn read<S: DispatchStore>(store: &S, key: &str) -> Option<Click> {
    let mut found = ok(store.clicks(&[key.to_owned()]).await, "clicks");
    found.remove(key)
}

/// Commits `clicks` and `claims` at `now`; the store failing fails the check.
async fn commit<S: DispatchStore>(
    store: &S,
    clicks: &[ClickWrite],
    claims: &[ClaimRequest],
    now: i64,
) -> Vec<Claim> {
    let answers = ok(store.commit(clicks, claims, now).await, "commit");
    assert_eq!(
        answers.len(),
        claims.len(),
        "commit answers each claim once"
    );
    answers
}

/// The value of a store call that must succeed.
#[allow(
    clippy::panic,
    reason = "a contract check reports a failed store call by failing the test that runs it"
)]
fn ok<T>(result: Result<T, StoreError>, call: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("the store failed a call the contract makes ({call}): {err}"),
    }
}
