//! What the rules make of each other and of the accounts: checks no single rule or account
//! can make alone.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::{Account, Rule, Trigger};
use crate::delivery::checks::{AccountView, RuleView};
use crate::destinations::check_rules;
use crate::model::{Channel, EventName};
use crate::values::privacy::is_personal_field_name;

/// Adds the errors and warnings of every cross-check: personal Flow fields feeding
/// `custom_data` (errors), Purchase on Instagram (a warning), and each destination's own
/// findings on the rules that can reach it.
pub(super) fn cross_checks(
    rules: &[Rule],
    accounts: &BTreeMap<(Channel, String), Arc<Account>>,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    errors.extend(personal_custom_data(rules));
    warnings.extend(purchase_on_instagram(rules, accounts));
    let views: Vec<RuleView<'_>> = rules.iter().map(view).collect();
    let accounts: Vec<(AccountView<'_>, _)> = accounts
        .values()
        .map(|a| {
            let view = AccountView {
                channel: a.channel,
                account_id: &a.account_id,
            };
            (view, &a.destinations)
        })
        .collect();
    let findings = check_rules(&views, &accounts);
    errors.extend(findings.errors);
    warnings.extend(findings.warnings);
}

/// What a destination is shown of a rule.
fn view(rule: &Rule) -> RuleView<'_> {
    RuleView {
        name: &rule.name,
        event: rule.event,
        renamed: &rule.renamed,
        currency: rule.custom_data.currency.as_deref(),
        channels: Channel::ALL
            .into_iter()
            .filter(|c| rule.applies_to(*c) && rule.trigger.can_fire_on(*c))
            .collect(),
    }
}

/// Meta optimises ads for Purchase on Messenger and WhatsApp, not Instagram (CAPI for Business
/// Messaging FAQ): a Purchase rule that can fire for an Instagram account is worth a warning.
fn purchase_on_instagram(
    rules: &[Rule],
    accounts: &BTreeMap<(Channel, String), Arc<Account>>,
) -> Vec<String> {
    if !accounts.keys().any(|(c, _)| *c == Channel::Instagram) {
        return Vec::new();
    }
    rules
        .iter()
        .filter(|r| r.applies_to(Channel::Instagram) && r.trigger.can_fire_on(Channel::Instagram))
        .filter(|r| {
            r.event == Some(EventName::Purchase)
                || matches!(&r.trigger, Trigger::AutomaticEvents(f) if f.as_ref().is_none_or(|f| f.contains(&EventName::Purchase)))
        })
        .map(|r| {
            format!(
                "rule {:?}: sends Purchase for Instagram, where Meta does not optimise ads for purchases (Messenger and WhatsApp only); add channels = [\"whatsapp\", \"messenger\"] if that is not meant",
                r.name
            )
        })
        .collect()
}

/// `custom_data` is sent to Meta in clear: a Flow field that any rule hashes into `user_data`,
/// or whose name (or whose `custom_data` key) names customer information, may not feed it.
fn personal_custom_data(rules: &[Rule]) -> Vec<String> {
    let hashed: HashSet<&str> = rules
        .iter()
        .flat_map(|r| r.user_data.iter().map(|(_, field)| field.as_str()))
        .collect();
    let mut errors = Vec::new();
    for rule in rules {
        for (key, field) in &rule.custom_data.fields {
            let why = if hashed.contains(field.as_str()) {
                "a user_data mapping hashes it"
            } else if is_personal_field_name(field) || is_personal_field_name(key) {
                "it names customer information"
            } else {
                continue;
            };
            errors.push(format!(
                "rule {:?}: custom_data.fields.{key} is fed from Flow field {field:?}, which is personal ({why}); custom_data is sent in clear: map it in user_data, where it is hashed",
                rule.name
            ));
        }
    }
    errors
}
