//! Reading the conversion report's aggregates from the wacapi table (`wacapi report --table`).
//! The dispatcher only writes them ([`crate::aws::dynamo`]); reading is an operator's call, with
//! the operator's credentials (`dynamodb:Scan` on the table), so the function's role does not
//! get it.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::aws::dynamo::{PK, get_n, get_s, store_err};
use crate::conversion::clicks::StoreError;
use crate::report::{FactKey, Filter, Tally};
use crate::values::money::round_money;

/// The report's aggregates `filter` keeps: a scan of the table's `report#` items (reading costs
/// the table's size in read units, so a report is an occasional read, not a dashboard).
pub async fn read_report(
    client: &Client,
    table: &str,
    filter: &Filter,
) -> Result<Vec<(FactKey, Tally)>, StoreError> {
    let mut out = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .filter_expression("begins_with(#pk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":prefix", AttributeValue::S("report#".into()))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| scan_error(table, e))?;
        for item in page.items() {
            let field = |name: &str| get_s(item, name).unwrap_or_default();
            let key = FactKey {
                day: field("day"),
                outcome: field("outcome"),
                destination: field("destination"),
                channel: field("channel"),
                account: field("account"),
                ad_id: field("ad_id"),
                rule: field("rule"),
                event_name: field("event_name"),
                currency: field("currency"),
            };
            if !filter.keeps(&key) {
                continue;
            }
            let tally = Tally {
                count: get_n(item, "n").unwrap_or(0).max(0) as u64,
                value: item
                    .get("value")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<f64>().ok())
                    .map_or(0.0, round_money),
                keys: item
                    .iter()
                    .filter_map(|(name, v)| {
                        let k = name.strip_prefix("k_")?;
                        let count = v.as_n().ok()?.parse::<u64>().ok()?;
                        Some((k.to_owned(), count))
                    })
                    .collect(),
            };
            out.push((key, tally));
        }
        match page.last_evaluated_key() {
            Some(last) if !last.is_empty() => start = Some(last.clone()),
            _ => break,
        }
    }
    Ok(out)
}

/// A scan failure said plainly: the two an operator meets first get their own words.
fn scan_error(
    table: &str,
    err: aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::scan::ScanError>,
) -> StoreError {
    let code = err.as_service_error().and_then(|e| {
        use aws_sdk_dynamodb::error::ProvideErrorMetadata;
        e.code().map(str::to_owned)
    });
    match code.as_deref() {
        Some("ResourceNotFoundException") => StoreError(format!(
            "table {table:?} not found in this account and region (terraform output -raw table_name; AWS_REGION)"
        )),
        Some("AccessDeniedException") => StoreError(format!(
            "not allowed to read table {table:?}: the report needs dynamodb:Scan on it"
        )),
        _ => store_err(err),
    }
}
