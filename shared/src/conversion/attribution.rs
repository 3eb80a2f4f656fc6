//! Click attribution: which ad touch a signal is credited to, and so which destination its
//! conversions go to. A message may be a touch itself (a Meta ad's referral, or another
//! destination's touch in its text, such as a TikTok ad's prefilled first message); otherwise
//! the user's latest stored touch counts inside the attribution window; a business event naming
//! a destination's lead is a touch of that destination when no other is known. The account is
//! resolved once per signal by the caller and passed in.

use crate::conversion::clicks::Click;
use crate::conversion::rules::{Account, Config, DedupScope, Rule};
use crate::model::{Channel, Destination};
use crate::signal::{Signal, SignalEvent};

/// A click may be stamped this far after the event (clock skew between messages).
const CLICK_CLOCK_SKEW_SECONDS: i64 = 300;

/// The click a signal is attributed to: its own touch (or Meta's click id for automatic
/// events) first, else `stored` when it falls inside the attribution window, else the lead a
/// business event names. An automatic event's `stored` is the click recorded under its click
/// id: Meta names the click, so no window applies, and the stored click only tells which ad it
/// was. `account` is the signal's account (`None` when none is configured).
pub fn attribute(
    config: &Config,
    account: Option<&Account>,
    signal: &Signal,
    stored: Option<&Click>,
) -> Option<Click> {
    if let SignalEvent::AutomaticEvent {
        ctwa_clid: Some(clid),
        ..
    } = &signal.event
    {
        let ad_id = stored
            .filter(|c| c.ctwa_clid.as_deref() == Some(clid.as_str()))
            .and_then(|c| c.ad_id.clone());
        return Some(Click {
            ctwa_clid: Some(clid.clone()),
            ad_id,
            clicked_at: signal.timestamp,
            channel: signal.channel,
            destination: Destination::Meta,
        });
    }
    if let Some(own) = touch(account, signal) {
        return Some(own);
    }
    stored
        .filter(|c| in_window(config, signal, c))
        .cloned()
        .or_else(|| lead_touch(account, signal))
}

/// [`attribute`], resolving the signal's account.
pub fn attributed_click(config: &Config, signal: &Signal, stored: Option<&Click>) -> Option<Click> {
    let account = config.account(signal.channel, &signal.account_id);
    attribute(config, account.map(AsRef::as_ref), signal, stored)
}

/// Whether a stored click attributes `signal`. Checked: both times come from queue messages,
/// and one that is no real time (near i64::MIN or MAX) attributes nothing rather than wrapping
/// into the window.
fn in_window(config: &Config, signal: &Signal, click: &Click) -> bool {
    click.clicked_at <= signal.timestamp.saturating_add(CLICK_CLOCK_SKEW_SECONDS)
        && signal
            .timestamp
            .checked_sub(click.clicked_at)
            .is_some_and(|age| age <= config.attribution_window_seconds)
}

/// A business event naming a lead (of an ad's instant form) of a user wacapi saw no ad touch
/// for: the lead itself says which destination's ad brought the user, when the account has
/// that destination. A touch wacapi did see comes first.
fn lead_touch(account: Option<&Account>, signal: &Signal) -> Option<Click> {
    let SignalEvent::Business {
        lead_id: Some(_), ..
    } = &signal.event
    else {
        return None;
    };
    let destination = account?.destinations.lead_destination()?;
    Some(Click {
        ctwa_clid: None,
        ad_id: None,
        clicked_at: signal.timestamp,
        channel: signal.channel,
        destination,
    })
}

/// The ad touch a message is itself: a Meta ad's click ([`own_click`]), or another
/// destination's touch in its text ([`text_touch`]).
pub fn touch(account: Option<&Account>, signal: &Signal) -> Option<Click> {
    own_click(signal).or_else(|| text_touch(account, signal))
}

/// Another destination's touch: a text the account recognises as that destination's ad (a
/// TikTok ad's prefilled first message). It has no click or ad id (WhatsApp's webhook carries
/// none for such ads), only its time.
pub fn text_touch(account: Option<&Account>, signal: &Signal) -> Option<Click> {
    let SignalEvent::Text { body } = &signal.event else {
        return None;
    };
    let destination = account?.destinations.text_touch(body)?;
    Some(Click {
        ctwa_clid: None,
        ad_id: None,
        clicked_at: signal.timestamp,
        channel: signal.channel,
        destination,
    })
}

/// The click a message carries itself: on WhatsApp a referral with a `ctwa_clid`, on
/// Messenger and Instagram an ad referral (they have no click id).
pub fn own_click(signal: &Signal) -> Option<Click> {
    let referral = signal.referral.as_ref()?;
    let ctwa_clid = match signal.channel {
        Channel::Whatsapp => Some(referral.ctwa_clid.clone()?),
        Channel::Messenger | Channel::Instagram => None,
    };
    Some(Click {
        ctwa_clid,
        ad_id: referral.source_id.clone(),
        clicked_at: signal.timestamp,
        channel: signal.channel,
        destination: Destination::Meta,
    })
}

/// The user id an event is sent (or scoped) with: WhatsApp's click id, Messenger's and
/// Instagram's scoped user id; for another destination's touch the user's own key (a BSUID, a
/// phone hash, a scoped id: never sent, only hashed into event ids). `None` when there is none
/// (the event cannot be attributed).
pub fn channel_user_id(signal: &Signal, click: &Click) -> Option<String> {
    if !click.destination.is_meta() {
        return signal.user.primary_key().map(|k| k.tagged());
    }
    match signal.channel {
        Channel::Whatsapp => click.ctwa_clid.clone(),
        Channel::Messenger | Channel::Instagram => signal.user.scoped_id.clone(),
    }
}

/// What makes a click one click, for the `click` dedup scope: WhatsApp's click id; elsewhere the
/// user and the time of the ad touch (another destination's named first).
fn click_scope(signal: &Signal, click: &Click, user_id: &str) -> String {
    let channel = signal.channel.as_str();
    match &click.ctwa_clid {
        Some(clid) if signal.channel.is_whatsapp() && click.destination.is_meta() => {
            format!("click:{clid}")
        }
        _ if !click.destination.is_meta() => format!(
            "click:{}:{channel}:{user_id}:{}",
            click.destination.as_str(),
            click.clicked_at
        ),
        _ => format!("click:{channel}:{user_id}:{}", click.clicked_at),
    }
}

/// What makes two firings of `rule` one conversion, as its dedup scope says: the message, the
/// click, or the order (its id when known, else the order message).
pub fn scope_key(
    rule: &Rule,
    signal: &Signal,
    click: &Click,
    user_id: &str,
    order_id: Option<&str>,
) -> String {
    match rule.dedup {
        DedupScope::Message => format!("message:{}", signal.id),
        DedupScope::Click => click_scope(signal, click, user_id),
        DedupScope::Order => match order_id {
            Some(order_id) => format!("order:{order_id}"),
            None => format!("order-message:{}", signal.id),
        },
    }
}
