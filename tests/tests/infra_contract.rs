//! Holds `infra/` against the code: the Terraform is parsed (hcl-rs) and each check fails when a
//! deployment would break in production. Each check is also run on a mutated copy of the
//! Terraform to prove it bites.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};

use hcl::expr::{Expression, ObjectKey, TraversalOperator};
use hcl::{Block, Body};
use wacapi_shared::config::env;
use wacapi_shared::dispatch::metric_names;
use wacapi_shared::metrics::names as ingest_names;
use wacapi_tests::repo_root;

/// Every `infra/*.tf` file, by name.
fn sources() -> HashMap<String, String> {
    std::fs::read_dir(repo_root().join("infra"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

/// One body holding the blocks of every file.
fn parse(sources: &HashMap<String, String>) -> Body {
    let mut all = Body::builder();
    for (name, text) in sources {
        let body: Body = hcl::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for block in body.blocks() {
            all = all.add_block(block.clone());
        }
    }
    all.build()
}

fn infra() -> Body {
    parse(&sources())
}

/// `infra` with `find` replaced by `replace` in `file` (which must contain it).
fn mutated(file: &str, find: &str, replace: &str) -> Body {
    let mut s = sources();
    let text = s.get_mut(file).unwrap();
    assert!(text.contains(find), "{file} contains {find:?}");
    *text = text.replacen(find, replace, 1);
    parse(&s)
}

fn block<'a>(body: &'a Body, kind: &str, type_: &str, name: &str) -> &'a Block {
    body.blocks()
        .find(|b| {
            b.identifier() == kind
                && b.labels().first().map(|l| l.as_str()) == Some(type_)
                && b.labels().get(1).map(|l| l.as_str()) == Some(name)
        })
        .unwrap_or_else(|| panic!("{kind} {type_} {name}"))
}

fn blocks<'a>(body: &'a Body, kind: &'a str, type_: &'a str) -> impl Iterator<Item = &'a Block> {
    body.blocks().filter(move |b| {
        b.identifier() == kind && b.labels().first().map(|l| l.as_str()) == Some(type_)
    })
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn object_keys(expr: &Expression) -> BTreeSet<String> {
    match expr {
        Expression::Object(o) => o
            .keys()
            .map(|k| match k {
                ObjectKey::Identifier(i) => i.to_string(),
                ObjectKey::Expression(Expression::String(s)) => s.clone(),
                other => format!("{other:?}"),
            })
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// `aws_sqs_queue.signals` for `aws_sqs_queue.signals.arn` or `"${aws_sqs_queue.signals.arn}:*"`.
fn resource_ref(expr: &Expression) -> Option<String> {
    match expr {
        Expression::Traversal(t) => {
            let root = match &t.expr {
                Expression::Variable(v) => v.to_string(),
                _ => return None,
            };
            let first = t.operators.first().and_then(|op| match op {
                TraversalOperator::GetAttr(id) => Some(id.to_string()),
                _ => None,
            })?;
            Some(format!("{root}.{first}"))
        }
        Expression::TemplateExpr(t) => {
            let text = t.to_string();
            let inner = text.split("${").nth(1)?.split('}').next()?;
            let mut parts = inner.split('.');
            Some(format!("{}.{}", parts.next()?, parts.next()?))
        }
        _ => None,
    }
}

// --- environment ------------------------------------------------------------------------------

fn env_violations(body: &Body) -> Vec<String> {
    let mut v = Vec::new();
    for (function, reads) in [("ingest", env::INGEST), ("dispatch", env::DISPATCH)] {
        let f = block(body, "resource", "aws_lambda_function", function);
        let set = f
            .body()
            .blocks()
            .find(|b| b.identifier() == "environment")
            .and_then(|e| attr(e.body(), "variables"))
            .map(object_keys)
            .unwrap_or_default();
        let reads: BTreeSet<String> = reads.iter().map(|s| s.to_string()).collect();
        for missing in reads.difference(&set) {
            v.push(format!(
                "{function}: the code reads {missing}, Terraform does not set it"
            ));
        }
        for unused in set.difference(&reads) {
            v.push(format!(
                "{function}: Terraform sets {unused}, the code never reads it"
            ));
        }
    }
    v
}

#[test]
fn every_env_var_the_code_reads_is_set_and_none_is_set_in_vain() {
    assert_eq!(env_violations(&infra()), Vec::<String>::new());
    let v = env_violations(&mutated(
        "lambda.tf",
        "      WACAPI_TABLE_NAME             = aws_dynamodb_table.main.name\n",
        "      WACAPI_TABLE = aws_dynamodb_table.main.name\n",
    ));
    assert_eq!(
        v,
        [
            "dispatch: the code reads WACAPI_TABLE_NAME, Terraform does not set it",
            "dispatch: Terraform sets WACAPI_TABLE, the code never reads it"
        ]
    );
}

// --- IAM --------------------------------------------------------------------------------------

/// (action, resource) pairs of a policy document, and any wildcard resources.
fn policy(body: &Body, name: &str) -> (BTreeSet<(String, String)>, Vec<String>) {
    let doc = block(body, "data", "aws_iam_policy_document", name);
    let mut grants = BTreeSet::new();
    let mut wildcards = Vec::new();
    for statement in doc
        .body()
        .blocks()
        .filter(|b| b.identifier() == "statement")
    {
        let list = |key| match attr(statement.body(), key) {
            Some(Expression::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        for resource in list("resources") {
            if matches!(&resource, Expression::String(s) if s.contains('*')) {
                wildcards.push(format!("{name}: resource {resource}"));
            }
            for action in list("actions") {
                let Expression::String(action) = action else {
                    continue;
                };
                if action.contains('*') {
                    wildcards.push(format!("{name}: action {action}"));
                }
                let target = resource_ref(&resource).unwrap_or_else(|| resource.to_string());
                grants.insert((action, target));
            }
        }
    }
    (grants, wildcards)
}

/// The AWS SDK operations the given adapter sources call, as IAM actions.
fn actions_called(files: &[&str]) -> BTreeSet<String> {
    let operations = [
        (".send_message_batch()", "sqs:SendMessage"),
        (".send_message()", "sqs:SendMessage"),
        (".receive_message()", "sqs:ReceiveMessage"),
        (".delete_message()", "sqs:DeleteMessage"),
        (".get_secret_value()", "secretsmanager:GetSecretValue"),
        (".get_item()", "dynamodb:GetItem"),
        (".put_item()", "dynamodb:PutItem"),
        (".update_item()", "dynamodb:UpdateItem"),
        (".delete_item()", "dynamodb:DeleteItem"),
        (".batch_write_item()", "dynamodb:BatchWriteItem"),
        (".batch_get_item()", "dynamodb:BatchGetItem"),
        (".query()", "dynamodb:Query"),
        // IAM authorises a transaction per item action: its updates (claims, clicks, report
        // counts) and its puts (sent marks).
        (".transact_write_items()", "dynamodb:UpdateItem"),
        ("Put::builder()", "dynamodb:PutItem"),
        (".scan()", "dynamodb:Scan"),
    ];
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        // Only the code, not the tests at the end of the module.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (call, action) in operations {
            if code.contains(call) {
                out.insert(action.to_owned());
            }
        }
    }
    out
}

const LOGS: [&str; 2] = ["logs:CreateLogStream", "logs:PutLogEvents"];

fn iam_violations(body: &Body) -> Vec<String> {
    let mut v = Vec::new();
    /// name, log group, declared permissions, adapter sources, event-source-only actions.
    type Function<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [&'a str],
        &'a [&'a str],
    );
    let functions: [Function<'_>; 2] = [
        (
            "ingest",
            "aws_cloudwatch_log_group.ingest",
            webhook_ingest::AWS_PERMISSIONS,
            &["shared/src/aws/sqs.rs", "shared/src/aws/secrets_manager.rs"],
            &[],
        ),
        (
            "dispatch",
            "aws_cloudwatch_log_group.dispatch",
            capi_dispatch::AWS_PERMISSIONS,
            &[
                "shared/src/aws/sqs.rs",
                "shared/src/aws/secrets_manager.rs",
                "shared/src/aws/dynamo.rs",
            ],
            capi_dispatch::EVENT_SOURCE_ACTIONS,
        ),
    ];
    for (name, log_group, declared, adapters, event_source) in functions {
        let (granted, wildcards) = policy(body, name);
        v.extend(wildcards);
        let mut wanted: BTreeSet<(String, String)> = declared
            .iter()
            .map(|(a, r)| (a.to_string(), r.to_string()))
            .collect();
        for action in LOGS {
            wanted.insert((action.to_owned(), log_group.to_owned()));
        }
        for missing in wanted.difference(&granted) {
            v.push(format!(
                "{name}: the code calls {} on {}, IAM does not allow it",
                missing.0, missing.1
            ));
        }
        for extra in granted.difference(&wanted) {
            v.push(format!(
                "{name}: IAM allows {} on {}, the code never calls it",
                extra.0, extra.1
            ));
        }
        // The declared list itself must cover what the linked adapters call.
        let declared_actions: BTreeSet<String> =
            declared.iter().map(|(a, _)| a.to_string()).collect();
        for called in actions_called(adapters) {
            if !declared_actions.contains(&called) {
                v.push(format!(
                    "{name}: an adapter calls {called}, AWS_PERMISSIONS omits it"
                ));
            }
        }
        let called = actions_called(adapters);
        for action in &declared_actions {
            if !called.contains(action) && !event_source.contains(&action.as_str()) {
                v.push(format!(
                    "{name}: AWS_PERMISSIONS lists {action}, no adapter calls it"
                ));
            }
        }
    }
    v
}

#[test]
fn iam_grants_exactly_what_the_code_calls_on_exactly_its_resources() {
    assert_eq!(iam_violations(&infra()), Vec::<String>::new());
}

#[test]
fn a_missing_action_or_a_wildcard_resource_is_caught() {
    let v = iam_violations(&mutated(
        "iam.tf",
        r#"actions   = ["dynamodb:BatchGetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:PutItem"]"#,
        r#"actions   = ["dynamodb:BatchGetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]"#,
    ));
    assert_eq!(
        v,
        [
            "dispatch: the code calls dynamodb:PutItem on aws_dynamodb_table.main, IAM does not allow it"
        ]
    );
    let v = iam_violations(&mutated(
        "iam.tf",
        "resources = [aws_secretsmanager_secret.webhook.arn, aws_secretsmanager_secret.events_keys.arn]",
        r#"resources = ["*"]"#,
    ));
    assert!(v.contains(&"ingest: resource \"*\"".to_owned()), "{v:?}");
}

// --- queue and event source -------------------------------------------------------------------

fn variable_default(body: &Body, name: &str) -> hcl::Value {
    let var = body
        .blocks()
        .find(|b| b.identifier() == "variable" && b.labels()[0].as_str() == name)
        .unwrap();
    let expr = attr(var.body(), "default").unwrap().clone();
    hcl::eval::Evaluate::evaluate(&expr, &hcl::eval::Context::new()).unwrap()
}

fn queue_violations(body: &Body) -> Vec<String> {
    use hcl::eval::{Context, Evaluate};
    let mut v = Vec::new();
    let signals = block(body, "resource", "aws_sqs_queue", "signals").body();
    let visibility = attr(signals, "visibility_timeout_seconds").unwrap();
    let default = variable_default(body, "dispatch_timeout_seconds")
        .as_u64()
        .unwrap();
    // The default and both ends of the variable's validated range.
    for timeout in [default, 15, 900] {
        let mut ctx = Context::new();
        let mut vars = hcl::Map::new();
        vars.insert(
            "dispatch_timeout_seconds".to_owned(),
            hcl::Value::from(timeout),
        );
        ctx.declare_var("var", hcl::Value::Object(vars));
        let value = visibility.evaluate(&ctx).unwrap().as_u64().unwrap();
        if value < 6 * timeout {
            v.push(format!(
                "visibility timeout {value} s is below 6 × the dispatch timeout {timeout} s"
            ));
        }
    }
    let redrive = attr(signals, "redrive_policy")
        .map(|e| e.to_string())
        .unwrap_or_default();
    if !redrive.contains("deadLetterTargetArn = aws_sqs_queue.dead_letters.arn")
        || !redrive.contains("maxReceiveCount")
    {
        v.push("the signal queue has no redrive policy to the dead-letter queue".into());
    }
    for (name, queue) in [
        ("signals", signals),
        (
            "dead_letters",
            block(body, "resource", "aws_sqs_queue", "dead_letters").body(),
        ),
    ] {
        if attr(queue, "fifo_queue").map(|e| e.to_string()) != Some("true".into()) {
            v.push(format!("{name} is not FIFO"));
        }
        // The code queues messages up to MAX_MESSAGE_BYTES; the provider's default is 256 KiB.
        let size = attr(queue, "max_message_size").map(|e| e.to_string());
        if size != Some(wacapi_shared::queue::MAX_MESSAGE_BYTES.to_string()) {
            v.push(format!(
                "{name} holds {size:?} bytes, not the {} the code sends",
                wacapi_shared::queue::MAX_MESSAGE_BYTES
            ));
        }
    }
    // 1 MiB queues need a provider that accepts them (6.8), in the module and its example.
    let version = regex::Regex::new(r#"version\s*=\s*">= 6\.(\d+)"#).unwrap();
    for text in [
        include_str!("../../infra/versions.tf"),
        include_str!("../../infra/examples/complete/versions.tf"),
    ] {
        let floor = version
            .captures(text)
            .and_then(|c| c[1].parse::<u32>().ok());
        if floor.is_none_or(|minor| minor < 8) {
            v.push("the AWS provider may be older than 6.8, which refuses 1 MiB queues".into());
        }
    }
    let mapping = block(
        body,
        "resource",
        "aws_lambda_event_source_mapping",
        "signals",
    )
    .body();
    let types = attr(mapping, "function_response_types")
        .map(|e| e.to_string())
        .unwrap_or_default();
    if !types.contains("ReportBatchItemFailures") {
        v.push("the event source mapping does not report batch item failures".into());
    }
    if !mapping.blocks().any(|b| b.identifier() == "scaling_config") {
        v.push("the event source mapping has no maximum concurrency".into());
    }
    v
}

#[test]
fn the_queue_outlives_the_dispatcher_and_reports_partial_failures() {
    assert_eq!(queue_violations(&infra()), Vec::<String>::new());
    let v = queue_violations(&mutated(
        "queues.tf",
        "6 * var.dispatch_timeout_seconds",
        "5 * var.dispatch_timeout_seconds",
    ));
    assert_eq!(v.len(), 3, "{v:?}");
    let v = queue_violations(&mutated(
        "lambda.tf",
        r#"function_response_types = ["ReportBatchItemFailures"]"#,
        "function_response_types = []",
    ));
    assert_eq!(
        v,
        ["the event source mapping does not report batch item failures"]
    );
    let v = queue_violations(&mutated(
        "queues.tf",
        "max_message_size            = 1048576\n  message_retention_seconds",
        "message_retention_seconds",
    ));
    assert_eq!(
        v,
        ["dead_letters holds None bytes, not the 1048576 the code sends"]
    );
    let v = queue_violations(&mutated(
        "queues.tf",
        "deadLetterTargetArn = aws_sqs_queue.dead_letters.arn",
        "deadLetterTargetArn = \"\"",
    ));
    assert_eq!(
        v,
        ["the signal queue has no redrive policy to the dead-letter queue"]
    );
}

// --- metrics ----------------------------------------------------------------------------------

/// (service, metric) pairs used in the wacapi namespace by alarms and the dashboard.
fn metrics_used(body: &Body) -> Vec<(Option<String>, String)> {
    fn is_namespace(e: &Expression) -> bool {
        e.to_string() == "var.metrics_namespace"
    }
    fn walk(e: &Expression, out: &mut Vec<(Option<String>, String)>) {
        match e {
            Expression::Array(items) => {
                if items.first().is_some_and(is_namespace) {
                    let s = |i: usize| match items.get(i) {
                        Some(Expression::String(s)) => Some(s.clone()),
                        _ => None,
                    };
                    let service = (s(2).as_deref() == Some("Service")).then(|| s(3)).flatten();
                    out.push((service, s(1).unwrap_or_default()));
                }
                items.iter().for_each(|i| walk(i, out));
            }
            Expression::Object(o) => o.values().for_each(|v| walk(v, out)),
            Expression::FuncCall(f) => f.args.iter().for_each(|a| walk(a, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let service_of = |dims: Option<&Expression>| {
        dims.map(|d| d.to_string()).map(|d| {
            if d.contains("ingest_dims") {
                "webhook-ingest".to_owned()
            } else if d.contains("dispatch_dims") {
                "capi-dispatch".to_owned()
            } else {
                d
            }
        })
    };
    for alarm in blocks(body, "resource", "aws_cloudwatch_metric_alarm") {
        let b = alarm.body();
        if attr(b, "namespace").is_some_and(is_namespace)
            && let Some(Expression::String(name)) = attr(b, "metric_name")
        {
            out.push((service_of(attr(b, "dimensions")), name.clone()));
        }
        for query in b.blocks().filter(|q| q.identifier() == "metric_query") {
            for metric in query.body().blocks().filter(|m| m.identifier() == "metric") {
                let m = metric.body();
                if attr(m, "namespace").is_some_and(is_namespace)
                    && let Some(Expression::String(name)) = attr(m, "metric_name")
                {
                    out.push((service_of(attr(m, "dimensions")), name.clone()));
                }
            }
        }
    }
    // Alarms defined as data: `locals { wacapi_alarms = { name = { service, metric, ... } } }`.
    for locals in body.blocks().filter(|b| b.identifier() == "locals") {
        if let Some(Expression::Object(alarms)) = attr(locals.body(), "wacapi_alarms") {
            for alarm in alarms.values() {
                if let Expression::Object(fields) = alarm {
                    let field = |name: &str| {
                        fields.iter().find_map(|(k, v)| match (k, v) {
                            (ObjectKey::Identifier(i), Expression::String(s))
                                if i.as_str() == name =>
                            {
                                Some(s.clone())
                            }
                            _ => None,
                        })
                    };
                    out.push((field("service"), field("metric").unwrap_or_default()));
                }
            }
        }
    }
    for dashboard in blocks(body, "resource", "aws_cloudwatch_dashboard") {
        if let Some(e) = attr(dashboard.body(), "dashboard_body") {
            walk(e, &mut out);
        }
    }
    out
}

fn metric_violations(body: &Body) -> Vec<String> {
    let used = metrics_used(body);
    let dispatch_names = metric_names::all();
    let mut v = Vec::new();
    for (service, name) in &used {
        let (known, emitter): (&[&str], &str) = match service.as_deref() {
            Some(webhook_ingest::SERVICE) => (ingest_names::INGEST, webhook_ingest::SERVICE),
            Some(capi_dispatch::SERVICE) => (&dispatch_names, capi_dispatch::SERVICE),
            other => {
                v.push(format!(
                    "{name}: Service dimension {other:?} is not a wacapi function"
                ));
                continue;
            }
        };
        if !known.contains(&name.as_str()) {
            v.push(format!("{name} is not a metric {emitter} emits"));
        }
    }
    v
}

/// Dashboard metrics drawn per channel: `[ns, metric, "Service", service, "Channel", channel]`
/// must be metrics that service publishes per channel, for a channel that exists.
fn channel_dimension_violations(body: &Body) -> Vec<String> {
    fn walk(e: &Expression, out: &mut Vec<Vec<String>>) {
        match e {
            Expression::Array(items) => {
                if items
                    .first()
                    .is_some_and(|e| e.to_string() == "var.metrics_namespace")
                {
                    out.push(
                        items
                            .iter()
                            .skip(1)
                            .map(|i| match i {
                                Expression::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect(),
                    );
                }
                items.iter().for_each(|i| walk(i, out));
            }
            Expression::Object(o) => o.values().for_each(|v| walk(v, out)),
            Expression::FuncCall(f) => f.args.iter().for_each(|a| walk(a, out)),
            _ => {}
        }
    }
    let mut lines = Vec::new();
    for dashboard in blocks(body, "resource", "aws_cloudwatch_dashboard") {
        if let Some(e) = attr(dashboard.body(), "dashboard_body") {
            walk(e, &mut lines);
        }
    }
    let mut v = Vec::new();
    for line in lines {
        let [name, service_key, service, dimension, value, ..] = line.as_slice() else {
            continue;
        };
        if service_key != "Service" {
            continue;
        }
        if dimension == wacapi_shared::metrics::DESTINATION {
            if !metric_names::BY_DESTINATION.contains(&name.as_str())
                || service != capi_dispatch::SERVICE
            {
                v.push(format!(
                    "{name} is not published per destination by {service}"
                ));
            }
            if value.parse::<wacapi_shared::model::Destination>().is_err() {
                v.push(format!("{name}: {value:?} is not a destination"));
            }
            continue;
        }
        if dimension != wacapi_shared::metrics::CHANNEL {
            continue;
        }
        let by_channel = match service.as_str() {
            webhook_ingest::SERVICE => ingest_names::BY_CHANNEL,
            capi_dispatch::SERVICE => metric_names::BY_CHANNEL,
            _ => &[][..],
        };
        if !by_channel.contains(&name.as_str()) {
            v.push(format!("{name} is not published per channel by {service}"));
        }
        if value.parse::<wacapi_shared::channels::Channel>().is_err() {
            v.push(format!("{name}: {value:?} is not a channel"));
        }
    }
    v
}

#[test]
fn channel_and_destination_widgets_draw_metrics_published_per_dimension() {
    let body = infra();
    assert_eq!(channel_dimension_violations(&body), Vec::<String>::new());
    let text =
        std::fs::read_to_string(wacapi_tests::repo_root().join("infra/monitoring.tf")).unwrap();
    for channel in wacapi_shared::channels::Channel::ALL {
        for (metric, service) in [
            ("SignalsEnqueued", webhook_ingest::SERVICE),
            ("EventsSent", capi_dispatch::SERVICE),
            ("EventsSkipped", capi_dispatch::SERVICE),
        ] {
            let line = format!(r#""{metric}", "Service", "{service}", "Channel", "{channel}""#);
            assert!(text.contains(&line), "the dashboard draws {line}");
        }
    }
    for destination in ["meta", "tiktok"] {
        let line =
            format!(r#""EventsSent", "Service", "capi-dispatch", "Destination", "{destination}""#);
        assert!(text.contains(&line), "the dashboard draws {line}");
    }
    let v = channel_dimension_violations(&mutated(
        "monitoring.tf",
        r#""EventsSent", "Service", "capi-dispatch", "Destination", "tiktok""#,
        r#""EventsSent", "Service", "capi-dispatch", "Destination", "snapchat""#,
    ));
    assert_eq!(v, ["EventsSent: \"snapchat\" is not a destination"]);
    let v = channel_dimension_violations(&mutated(
        "monitoring.tf",
        r#""EventsSent", "Service", "capi-dispatch", "Channel", "messenger""#,
        r#""DedupHits", "Service", "capi-dispatch", "Channel", "telegram""#,
    ));
    assert_eq!(
        v,
        [
            "DedupHits is not published per channel by capi-dispatch",
            "DedupHits: \"telegram\" is not a channel"
        ]
    );
}

#[test]
fn alarms_and_dashboard_use_only_metrics_the_code_emits() {
    let body = infra();
    let used = metrics_used(&body);
    assert!(
        used.len() >= 20,
        "the walk finds the dashboard's metrics: {used:?}"
    );
    assert_eq!(metric_violations(&body), Vec::<String>::new());
    let v = metric_violations(&mutated(
        "monitoring.tf",
        r#"[var.metrics_namespace, "DedupHits", "Service", "capi-dispatch"]"#,
        r#"[var.metrics_namespace, "DuplicateHits", "Service", "capi-dispatch"]"#,
    ));
    assert_eq!(v, ["DuplicateHits is not a metric capi-dispatch emits"]);
    let v = metric_violations(&mutated(
        "monitoring.tf",
        r#"metric      = "GraphAuthErrors""#,
        r#"metric      = "GraphTokenErrors""#,
    ));
    assert_eq!(v, ["GraphTokenErrors is not a metric capi-dispatch emits"]);
}

/// Dispatch metrics the code calls alarms that no alarm in the namespace watches.
fn unalarmed_metrics(body: &Body) -> Vec<String> {
    let alarmed: BTreeSet<String> = metrics_used(&alarms_only(body))
        .into_iter()
        .filter(|(service, _)| service.as_deref() == Some(capi_dispatch::SERVICE))
        .map(|(_, name)| name)
        .collect();
    metric_names::alarmed()
        .iter()
        .filter(|name| !alarmed.contains(**name))
        .map(|name| format!("{name} has no alarm"))
        .collect()
}

/// `body` without its dashboards: what [`metrics_used`] finds there is alarms only.
fn alarms_only(body: &Body) -> Body {
    let mut kept = Body::builder();
    for block in body.blocks().filter(|b| {
        !(b.identifier() == "resource"
            && b.labels().first().map(|l| l.as_str()) == Some("aws_cloudwatch_dashboard"))
    }) {
        kept = kept.add_block(block.clone());
    }
    kept.build()
}

#[test]
fn every_metric_the_dispatcher_calls_an_alarm_has_one() {
    let body = infra();
    assert_eq!(unalarmed_metrics(&body), Vec::<String>::new());
    assert!(
        metric_names::alarmed()
            .contains(&wacapi_shared::meta::metric_names::GRAPH_VERSION_WARNINGS)
    );
    let v = unalarmed_metrics(&mutated(
        "monitoring.tf",
        r#"metric      = "GraphVersionWarnings""#,
        r#"metric      = "GraphRequests""#,
    ));
    assert_eq!(v, ["GraphVersionWarnings has no alarm"]);
}

// --- logs and functions -----------------------------------------------------------------------

fn log_violations(body: &Body) -> Vec<String> {
    blocks(body, "resource", "aws_cloudwatch_log_group")
        .filter(|b| attr(b.body(), "retention_in_days").is_none())
        .map(|b| format!("log group {} has no retention", b.labels()[1].as_str()))
        .collect()
}

#[test]
fn every_log_group_has_a_retention() {
    assert_eq!(log_violations(&infra()), Vec::<String>::new());
    let v = log_violations(&mutated(
        "api.tf",
        "  retention_in_days = var.log_retention_days\n",
        "",
    ));
    assert_eq!(v, ["log group api has no retention"]);
}

#[test]
fn functions_run_the_custom_runtime_with_json_logs() {
    let body = infra();
    for name in ["ingest", "dispatch"] {
        let f = block(&body, "resource", "aws_lambda_function", name).body();
        assert_eq!(
            attr(f, "runtime").unwrap().to_string(),
            "\"provided.al2023\""
        );
        assert_eq!(attr(f, "handler").unwrap().to_string(), "\"bootstrap\"");
        let arch: String = attr(f, "architectures")
            .unwrap()
            .to_string()
            .split_whitespace()
            .collect();
        assert_eq!(arch, "[var.architecture]");
        let logging = f
            .blocks()
            .find(|b| b.identifier() == "logging_config")
            .unwrap();
        assert_eq!(
            attr(logging.body(), "log_format").unwrap().to_string(),
            "\"JSON\""
        );
    }
    let routes: BTreeSet<String> = blocks(&body, "resource", "aws_apigatewayv2_route")
        .map(|r| attr(r.body(), "route_key").unwrap().to_string())
        .collect();
    assert_eq!(
        routes,
        BTreeSet::from([
            "\"GET /webhook\"".to_owned(),
            "\"POST /events\"".to_owned(),
            "\"POST /webhook\"".to_owned()
        ])
    );
}

/// For every `log_level` the module accepts: Lambda's application level must let INFO lines
/// through (Lambda gives the EMF documents, which carry no `level`, the level INFO: "If the
/// "level" value field is invalid or missing, Lambda assigns the log output the level INFO",
/// Lambda Developer Guide › Log-level filtering), and wacapi's own level must be the one asked
/// (`WACAPI_LOG_LEVEL`, read by `logging::lambda_level`).
fn log_level_violations(body: &Body) -> Vec<String> {
    use hcl::eval::{Context, Evaluate};
    const LAMBDA_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let locals: Vec<&hcl::Attribute> = body
        .blocks()
        .filter(|b| b.identifier() == "locals")
        .flat_map(|b| b.body().attributes())
        .collect();
    let mut v = Vec::new();
    fn contains(args: hcl::eval::FuncArgs) -> Result<hcl::Value, String> {
        let list = args[0].as_array().ok_or("contains: not a list")?;
        Ok(hcl::Value::Bool(list.contains(&args[1])))
    }
    for asked in LAMBDA_LEVELS {
        let mut ctx = Context::new();
        ctx.declare_func(
            "contains",
            hcl::eval::FuncDef::new(
                contains,
                [
                    hcl::eval::ParamType::array_of(hcl::eval::ParamType::Any),
                    hcl::eval::ParamType::Any,
                ],
            ),
        );
        let mut vars = hcl::Map::new();
        vars.insert("log_level".to_owned(), hcl::Value::from(asked));
        ctx.declare_var("var", hcl::Value::Object(vars));
        let mut local = hcl::Map::new();
        for a in &locals {
            if let Ok(value) = a.expr().evaluate(&ctx) {
                local.insert(a.key().to_owned(), value);
            }
        }
        ctx.declare_var("local", hcl::Value::Object(local));
        for name in ["ingest", "dispatch"] {
            let f = block(body, "resource", "aws_lambda_function", name).body();
            let logging = f
                .blocks()
                .find(|b| b.identifier() == "logging_config")
                .map(|b| b.body());
            let app = logging
                .and_then(|l| attr(l, "application_log_level"))
                .and_then(|e| e.evaluate(&ctx).ok())
                .and_then(|v| v.as_str().map(str::to_owned));
            let passes_info = app
                .as_deref()
                .and_then(|a| LAMBDA_LEVELS.iter().position(|l| *l == a))
                .is_some_and(|i| i <= 2);
            if !passes_info {
                v.push(format!(
                    "{name}: at log_level {asked} Lambda's application level is {app:?}, which drops the EMF metrics"
                ));
            }
            // Only this entry: the others name resources the context does not hold.
            let own = f
                .blocks()
                .find(|b| b.identifier() == "environment")
                .and_then(|e| attr(e.body(), "variables"))
                .and_then(|e| match e {
                    Expression::Object(o) => o
                        .iter()
                        .find(|(k, _)| {
                            matches!(k, ObjectKey::Identifier(i) if i.as_str() == wacapi_shared::config::env::LOG_LEVEL)
                        })
                        .and_then(|(_, v)| v.evaluate(&ctx).ok()),
                    _ => None,
                })
                .and_then(|l| l.as_str().map(str::to_owned));
            if own.as_deref() != Some(asked) {
                v.push(format!(
                    "{name}: at log_level {asked} WACAPI_LOG_LEVEL is {own:?}"
                ));
            }
        }
    }
    v
}

#[test]
fn no_log_level_drops_the_metrics() {
    assert_eq!(log_level_violations(&infra()), Vec::<String>::new());
    let v = log_level_violations(&mutated(
        "lambda.tf",
        "application_log_level = contains([\"TRACE\", \"DEBUG\"], var.log_level) ? var.log_level : \"INFO\"",
        "application_log_level = var.log_level",
    ));
    assert_eq!(v.len(), 6, "WARN, ERROR and FATAL, both functions: {v:#?}");
    // The level the code reads is the level the module sets.
    assert_eq!(
        wacapi_shared::logging::lambda_level(|n| (n == "WACAPI_LOG_LEVEL").then(|| "ERROR".into()))
            .to_string(),
        "error"
    );
}

// --- deployable: the defects a real apply or operation would meet -----------------------------

fn text_of(expr: &Expression) -> String {
    hcl::format::to_string(expr).unwrap_or_default()
}

/// Every `variable` block of `number` type.
fn number_variables(body: &Body) -> Vec<&Block> {
    body.blocks()
        .filter(|b| b.identifier() == "variable")
        .filter(|b| attr(b.body(), "type").is_some_and(|t| text_of(t) == "number"))
        .collect()
}

fn validation_condition(var: &Block) -> Option<String> {
    var.body()
        .blocks()
        .find(|b| b.identifier() == "validation")
        .and_then(|v| attr(v.body(), "condition"))
        .map(text_of)
}

fn deploy_violations(body: &Body) -> Vec<String> {
    let mut v = Vec::new();
    for var in number_variables(body) {
        let name = var.labels()[0].as_str();
        let whole = format!("floor(var.{name}) == var.{name}");
        let fraction_ok = name.ends_with("_percent");
        if !fraction_ok && !validation_condition(var).is_some_and(|c| c.contains(&whole)) {
            v.push(format!("variable {name} accepts fractions"));
        }
    }
    // name: the regex must refuse 2 characters (DynamoDB needs 3) and take 3.
    let name_var = block_by_label(body, "variable", "name");
    let condition = validation_condition(name_var).unwrap_or_default();
    let pattern = condition
        .split("regex(\"")
        .nth(1)
        .and_then(|r| r.split("\", ").next())
        .unwrap_or_default()
        .replace("\\\\", "\\");
    match regex::Regex::new(&pattern) {
        Ok(re) if !re.is_match("ab") && re.is_match("abc") => {}
        _ => v.push(format!("name allows fewer than 3 characters: {pattern:?}")),
    }
    // Alarms must be deliverable: the topic's key is one CloudWatch may use.
    let topic = block(body, "resource", "aws_sns_topic", "alarms").body();
    let key = attr(topic, "kms_master_key_id")
        .map(text_of)
        .unwrap_or_default();
    if !key.starts_with("aws_kms_key.") {
        v.push(format!(
            "the alarm topic's key {key} is not a customer-managed key"
        ));
    }
    let policy = block(body, "data", "aws_iam_policy_document", "alarms_key").body();
    let cloudwatch_may_publish = policy.blocks().any(|s| {
        let actions = attr(s.body(), "actions").map(text_of).unwrap_or_default();
        s.body().blocks().any(|p| {
            attr(p.body(), "identifiers")
                .is_some_and(|i| text_of(i).contains("cloudwatch.amazonaws.com"))
        }) && actions.contains("kms:Decrypt")
            && actions.contains("kms:GenerateDataKey*")
    });
    if !cloudwatch_may_publish {
        v.push("the alarm key's policy does not let CloudWatch publish".into());
    }
    // The Graph timeout must fit in the dispatch timeout.
    let dispatch = block(body, "resource", "aws_lambda_function", "dispatch").body();
    let precondition = dispatch
        .blocks()
        .filter(|b| b.identifier() == "lifecycle")
        .flat_map(|l| {
            l.body()
                .blocks()
                .filter(|b| b.identifier() == "precondition")
        })
        .filter_map(|p| attr(p.body(), "condition").map(text_of))
        .any(|c| {
            c.contains("var.graph_timeout_seconds") && c.contains("var.dispatch_timeout_seconds")
        });
    if !precondition {
        v.push("no precondition holds graph_timeout_seconds below dispatch_timeout_seconds".into());
    }
    // The rules layer: checked first, created before the old version goes, hashed from its zip.
    let layer = block(body, "resource", "aws_lambda_layer_version", "rules").body();
    let cbd = layer
        .blocks()
        .filter(|b| b.identifier() == "lifecycle")
        .any(|l| attr(l.body(), "create_before_destroy").is_some_and(|e| text_of(e) == "true"));
    if !cbd {
        v.push("the rules layer is replaced destroy-first".into());
    }
    if !attr(layer, "depends_on").is_some_and(|d| text_of(d).contains("terraform_data.rules_check"))
    {
        v.push("the rules layer does not wait for check-config".into());
    }
    if !attr(layer, "source_code_hash")
        .is_some_and(|h| text_of(h).contains("data.archive_file.rules"))
    {
        v.push("the rules layer is not hashed from its zip".into());
    }
    let check = block(body, "resource", "terraform_data", "rules_check").body();
    for p in check.blocks().filter(|b| b.identifier() == "provisioner") {
        let command = attr(p.body(), "command").map(text_of).unwrap_or_default();
        if command.contains("${") || attr(p.body(), "environment").is_none() {
            v.push(format!(
                "local-exec interpolates paths into its command: {command}"
            ));
        }
    }
    // No provider configuration, no working-directory paths in the module.
    if body.blocks().any(|b| b.identifier() == "provider") {
        v.push("the module configures a provider".into());
    }
    for var in body.blocks().filter(|b| b.identifier() == "variable") {
        if let Some(default) = attr(var.body(), "default")
            && text_of(default).contains("../")
        {
            v.push(format!(
                "variable {} defaults to a path relative to the working directory",
                var.labels()[0].as_str()
            ));
        }
    }
    // Operations: a redrive destination, test stacks that can be destroyed.
    if !body
        .blocks()
        .any(|b| b.identifier() == "output" && b.labels()[0].as_str() == "signal_queue_arn")
    {
        v.push("no signal_queue_arn output for a redrive".into());
    }
    let table = block(body, "resource", "aws_dynamodb_table", "main").body();
    if attr(table, "deletion_protection_enabled")
        .map(text_of)
        .as_deref()
        != Some("var.deletion_protection")
    {
        v.push("deletion protection is not a variable".into());
    }
    for secret in blocks(body, "resource", "aws_secretsmanager_secret") {
        if attr(secret.body(), "recovery_window_in_days")
            .map(text_of)
            .as_deref()
            != Some("var.secret_recovery_window_days")
        {
            v.push(format!(
                "secret {} has a fixed recovery window",
                secret.labels()[1].as_str()
            ));
        }
    }
    for role in blocks(body, "resource", "aws_iam_role") {
        if attr(role.body(), "permissions_boundary").is_none() {
            v.push(format!(
                "role {} takes no permissions boundary",
                role.labels()[1].as_str()
            ));
        }
    }
    let namespace = validation_condition(block_by_label(body, "variable", "metrics_namespace"))
        .unwrap_or_default();
    if !namespace.contains("AWS/") {
        v.push("metrics_namespace may start with AWS/".into());
    }
    v
}

fn block_by_label<'a>(body: &'a Body, kind: &str, label: &str) -> &'a Block {
    body.blocks()
        .find(|b| b.identifier() == kind && b.labels().first().map(|l| l.as_str()) == Some(label))
        .unwrap_or_else(|| panic!("{kind} {label}"))
}

#[test]
fn the_module_deploys_alerts_and_tears_down() {
    assert_eq!(deploy_violations(&infra()), Vec::<String>::new());
    for (file, find, replace, want) in [
        (
            "variables.tf",
            "floor(var.dispatch_batch_size) == var.dispatch_batch_size && ",
            "",
            "variable dispatch_batch_size accepts fractions",
        ),
        (
            "variables.tf",
            "{2,31}",
            "{0,31}",
            "name allows fewer than 3 characters",
        ),
        (
            "monitoring.tf",
            "kms_master_key_id = aws_kms_key.alarms.arn",
            "kms_master_key_id = \"alias/aws/sns\"",
            "the alarm topic's key",
        ),
        (
            "monitoring.tf",
            "\"kms:GenerateDataKey*\"",
            "\"kms:Encrypt\"",
            "does not let CloudWatch publish",
        ),
        (
            "lambda.tf",
            "var.graph_timeout_seconds + 5",
            "5",
            "no precondition",
        ),
        (
            "rules.tf",
            "create_before_destroy = true",
            "create_before_destroy = false",
            "destroy-first",
        ),
        (
            "rules.tf",
            "data.archive_file.rules.output_base64sha256",
            "base64sha256(file(var.rules_file))",
            "not hashed from its zip",
        ),
        (
            "rules.tf",
            "\"\\\"$WACAPI_CLI\\\" check-config \\\"$WACAPI_RULES_FILE\\\"\"",
            "\"${local.wacapi_cli} check-config ${var.rules_file}\"",
            "local-exec interpolates",
        ),
        (
            "versions.tf",
            "terraform {",
            "provider \"aws\" {}\nterraform {",
            "configures a provider",
        ),
        (
            "variables.tf",
            "default     = null\n}\n\nvariable \"rules_file\"",
            "default     = \"../dist\"\n}\n\nvariable \"rules_file\"",
            "relative to the working directory",
        ),
        (
            "outputs.tf",
            "output \"signal_queue_arn\"",
            "output \"signal_queue_arn_x\"",
            "no signal_queue_arn",
        ),
        (
            "dynamodb.tf",
            "= var.deletion_protection",
            "= true",
            "deletion protection",
        ),
        (
            "secrets.tf",
            "= var.secret_recovery_window_days",
            "= 7",
            "fixed recovery window",
        ),
        (
            "iam.tf",
            "permissions_boundary = var.permissions_boundary\n",
            "",
            "takes no permissions boundary",
        ),
        (
            "variables.tf",
            " && !startswith(var.metrics_namespace, \"AWS/\")",
            "",
            "may start with AWS/",
        ),
    ] {
        let v = deploy_violations(&mutated(file, find, replace));
        assert!(
            v.iter().any(|m| m.contains(want)),
            "{file}: {want:?} not caught: {v:?}"
        );
    }
}

/// The example root calls the module with arguments it declares and every one it requires, and
/// configures the provider the module leaves to its caller.
#[test]
fn the_example_root_calls_the_module_as_declared() {
    let root = repo_root().join("infra/examples/complete");
    let mut example = Body::builder();
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "tf") {
            let body: Body = hcl::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for b in body.blocks() {
                example = example.add_block(b.clone());
            }
        }
    }
    let example = example.build();
    assert!(
        example.blocks().any(|b| b.identifier() == "provider"),
        "the root configures aws"
    );
    let module = block_by_label(&example, "module", "wacapi").body();
    assert_eq!(
        attr(module, "source").map(text_of).as_deref(),
        Some("\"../..\"")
    );
    let infra = infra();
    let declared: BTreeSet<String> = infra
        .blocks()
        .filter(|b| b.identifier() == "variable")
        .map(|b| b.labels()[0].as_str().to_owned())
        .collect();
    let required: BTreeSet<String> = infra
        .blocks()
        .filter(|b| b.identifier() == "variable" && attr(b.body(), "default").is_none())
        .map(|b| b.labels()[0].as_str().to_owned())
        .collect();
    let passed: BTreeSet<String> = module
        .attributes()
        .map(|a| a.key().to_owned())
        .filter(|k| k != "source")
        .collect();
    let unknown: Vec<&String> = passed.difference(&declared).collect();
    assert!(
        unknown.is_empty(),
        "arguments the module does not declare: {unknown:?}"
    );
    let missing: Vec<&String> = required.difference(&passed).collect();
    assert!(
        missing.is_empty(),
        "required variables not passed: {missing:?}"
    );
    let outputs: BTreeSet<String> = infra
        .blocks()
        .filter(|b| b.identifier() == "output")
        .map(|b| b.labels()[0].as_str().to_owned())
        .collect();
    for out in example.blocks().filter(|b| b.identifier() == "output") {
        let value = attr(out.body(), "value").map(text_of).unwrap_or_default();
        let name = value.strip_prefix("module.wacapi.").unwrap_or_default();
        assert!(outputs.contains(name), "{value} is not a module output");
    }
}

/// A validation's regular expression, as Terraform reads it from a `regex("...")` or
/// `regexall("...")` call in the condition of `variable`.
fn validation_regex(body: &Body, variable: &str, needle: &str) -> regex::Regex {
    let var = body
        .blocks()
        .find(|b| b.identifier() == "variable" && b.labels()[0].as_str() == variable)
        .unwrap();
    let condition = var
        .body()
        .blocks()
        .filter(|b| b.identifier() == "validation")
        .filter_map(|b| attr(b.body(), "condition"))
        .map(text_of)
        .find(|c| c.contains(needle))
        .unwrap_or_else(|| panic!("no validation of {variable} mentions {needle}"));
    let quoted = regex::Regex::new(r#"regex(?:all)?\((".*?[^\\]")"#)
        .unwrap()
        .captures(&condition)
        .unwrap()[1]
        .to_owned();
    // The HCL string literal, unescaped as JSON unescapes it (the same escapes), then read as
    // RE2 (whose syntax the regex crate shares for these patterns).
    let pattern: String = serde_json::from_str(&quoted).unwrap();
    regex::Regex::new(&pattern).unwrap()
}

#[test]
fn the_example_root_cannot_deploy_placeholder_rules_or_addresses() {
    let body = infra();
    // The module: a rules file is required, and the repository's made-up datasets are refused.
    let rules = body
        .blocks()
        .find(|b| b.identifier() == "variable" && b.labels()[0].as_str() == "rules_file")
        .unwrap();
    assert!(
        attr(rules.body(), "default").is_none(),
        "rules_file is required"
    );
    let placeholder = validation_regex(&body, "rules_file", "dataset_id");
    let ids = regex::Regex::new(r#"(?m)^\s*dataset_id\s*=\s*"([^"]*)""#).unwrap();
    for shipped in [
        "examples/wacapi.toml",
        "shared/src/conversion/rules/default_config.toml",
    ] {
        let text = std::fs::read_to_string(repo_root().join(shipped)).unwrap();
        let found: Vec<String> = ids.captures_iter(&text).map(|c| c[1].to_owned()).collect();
        assert!(!found.is_empty(), "{shipped}");
        for line in text
            .lines()
            .filter(|l| l.trim_start().starts_with("dataset_id"))
        {
            assert!(placeholder.is_match(line), "{shipped}: {line} would deploy");
        }
    }
    for real in [
        r#"dataset_id = "1484022872461920""#,
        r#"dataset_id = '702938451128374'"#,
    ] {
        assert!(!placeholder.is_match(real), "{real} is refused");
    }
    assert!(placeholder.is_match("dataset_id='0'"));
    // The example root passes it on and has no fallback.
    let root = repo_root().join("infra/examples/complete");
    let vars: Body =
        hcl::from_str(&std::fs::read_to_string(root.join("variables.tf")).unwrap()).unwrap();
    let root_rules = block_by_label(&vars, "variable", "rules_file").body();
    assert!(
        attr(root_rules, "default").is_none(),
        "the example root requires rules_file"
    );
    let main = std::fs::read_to_string(root.join("main.tf")).unwrap();
    assert!(
        !main.contains("examples/wacapi.toml"),
        "no fallback to the example rules"
    );
    // production.tfvars: its rules_file is a file to create, its alarm address a placeholder
    // the module refuses; both marked REQUIRED.
    let tfvars = std::fs::read_to_string(root.join("production.tfvars")).unwrap();
    let path = regex::Regex::new(r#"(?m)^rules_file\s*=\s*"([^"]+)""#)
        .unwrap()
        .captures(&tfvars)
        .unwrap()[1]
        .to_owned();
    assert!(
        !root.join(&path).exists(),
        "{path} must be the user's own file"
    );
    assert_eq!(tfvars.matches("\n# REQUIRED").count(), 2, "{tfvars}");
    let email = regex::Regex::new(r#"(?m)^alarm_email\s*=\s*"([^"]+)""#)
        .unwrap()
        .captures(&tfvars)
        .unwrap()[1]
        .to_owned();
    assert!(validation_regex(&body, "alarm_email", "example").is_match(&email));
    assert!(!validation_regex(&body, "alarm_email", "example").is_match("oncall@acme.io"));
}

// --- the deploying identity -------------------------------------------------------------------

/// What the AWS provider calls to create, read, update, tag and delete each resource type the
/// module uses (and the data sources it reads), per the AWS Service Authorization Reference of
/// each service. A resource type missing here fails the test: the policy is reviewed with it.
const DEPLOYER_ACTIONS: &[(&str, &[&str])] = &[
    (
        "aws_sqs_queue",
        &[
            "sqs:CreateQueue",
            "sqs:DeleteQueue",
            "sqs:GetQueueAttributes",
            "sqs:SetQueueAttributes",
            "sqs:ListQueueTags",
            "sqs:TagQueue",
            "sqs:UntagQueue",
        ],
    ),
    (
        "aws_sqs_queue_redrive_allow_policy",
        &["sqs:GetQueueAttributes", "sqs:SetQueueAttributes"],
    ),
    (
        "aws_dynamodb_table",
        &[
            "dynamodb:CreateTable",
            "dynamodb:DeleteTable",
            "dynamodb:DescribeTable",
            "dynamodb:UpdateTable",
            "dynamodb:DescribeTimeToLive",
            "dynamodb:UpdateTimeToLive",
            "dynamodb:DescribeContinuousBackups",
            "dynamodb:UpdateContinuousBackups",
            "dynamodb:ListTagsOfResource",
            "dynamodb:TagResource",
            "dynamodb:UntagResource",
        ],
    ),
    (
        "aws_lambda_function",
        &[
            "lambda:CreateFunction",
            "lambda:DeleteFunction",
            "lambda:GetFunction",
            "lambda:GetFunctionConfiguration",
            "lambda:GetFunctionCodeSigningConfig",
            "lambda:ListVersionsByFunction",
            "lambda:UpdateFunctionCode",
            "lambda:UpdateFunctionConfiguration",
            "lambda:ListTags",
            "lambda:TagResource",
            "lambda:UntagResource",
            "iam:PassRole",
        ],
    ),
    (
        "aws_lambda_layer_version",
        &[
            "lambda:PublishLayerVersion",
            "lambda:GetLayerVersion",
            "lambda:DeleteLayerVersion",
        ],
    ),
    (
        "aws_lambda_event_source_mapping",
        &[
            "lambda:CreateEventSourceMapping",
            "lambda:GetEventSourceMapping",
            "lambda:UpdateEventSourceMapping",
            "lambda:DeleteEventSourceMapping",
        ],
    ),
    (
        "aws_lambda_permission",
        &[
            "lambda:AddPermission",
            "lambda:RemovePermission",
            "lambda:GetPolicy",
        ],
    ),
    (
        "aws_iam_role",
        &[
            "iam:CreateRole",
            "iam:DeleteRole",
            "iam:GetRole",
            "iam:UpdateRole",
            "iam:TagRole",
            "iam:UntagRole",
            "iam:ListRolePolicies",
            "iam:ListAttachedRolePolicies",
            "iam:ListInstanceProfilesForRole",
            "iam:PutRolePermissionsBoundary",
        ],
    ),
    (
        "aws_iam_role_policy",
        &[
            "iam:PutRolePolicy",
            "iam:GetRolePolicy",
            "iam:DeleteRolePolicy",
        ],
    ),
    (
        "aws_cloudwatch_log_group",
        &[
            "logs:CreateLogGroup",
            "logs:DeleteLogGroup",
            "logs:DescribeLogGroups",
            "logs:PutRetentionPolicy",
            "logs:DeleteRetentionPolicy",
            "logs:ListTagsForResource",
            "logs:TagResource",
            "logs:UntagResource",
        ],
    ),
    (
        "aws_cloudwatch_metric_alarm",
        &[
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:DeleteAlarms",
            "cloudwatch:ListTagsForResource",
            "cloudwatch:TagResource",
            "cloudwatch:UntagResource",
        ],
    ),
    (
        "aws_cloudwatch_dashboard",
        &[
            "cloudwatch:PutDashboard",
            "cloudwatch:GetDashboard",
            "cloudwatch:DeleteDashboards",
        ],
    ),
    (
        "aws_cloudwatch_query_definition",
        &[
            "logs:PutQueryDefinition",
            "logs:DescribeQueryDefinitions",
            "logs:DeleteQueryDefinition",
        ],
    ),
    (
        "aws_apigatewayv2_api",
        &[
            "apigateway:POST",
            "apigateway:GET",
            "apigateway:PATCH",
            "apigateway:DELETE",
            "apigateway:TagResource",
        ],
    ),
    (
        "aws_apigatewayv2_integration",
        &[
            "apigateway:POST",
            "apigateway:GET",
            "apigateway:PATCH",
            "apigateway:DELETE",
        ],
    ),
    (
        "aws_apigatewayv2_route",
        &[
            "apigateway:POST",
            "apigateway:GET",
            "apigateway:PATCH",
            "apigateway:DELETE",
        ],
    ),
    // Access logs of an HTTP API stage are a log delivery ("Configuring logging for an HTTP API").
    (
        "aws_apigatewayv2_stage",
        &[
            "apigateway:POST",
            "apigateway:GET",
            "apigateway:PATCH",
            "apigateway:DELETE",
            "logs:CreateLogDelivery",
            "logs:GetLogDelivery",
            "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery",
            "logs:ListLogDeliveries",
            "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies",
        ],
    ),
    (
        "aws_secretsmanager_secret",
        &[
            "secretsmanager:CreateSecret",
            "secretsmanager:DescribeSecret",
            "secretsmanager:DeleteSecret",
            "secretsmanager:GetResourcePolicy",
            "secretsmanager:UpdateSecret",
            "secretsmanager:TagResource",
            "secretsmanager:UntagResource",
        ],
    ),
    (
        "aws_sns_topic",
        &[
            "sns:CreateTopic",
            "sns:DeleteTopic",
            "sns:GetTopicAttributes",
            "sns:SetTopicAttributes",
            "sns:ListTagsForResource",
            "sns:TagResource",
            "sns:UntagResource",
        ],
    ),
    (
        "aws_sns_topic_subscription",
        &[
            "sns:Subscribe",
            "sns:Unsubscribe",
            "sns:GetSubscriptionAttributes",
            "sns:SetSubscriptionAttributes",
            "sns:ListSubscriptionsByTopic",
        ],
    ),
    (
        "aws_kms_key",
        &[
            "kms:CreateKey",
            "kms:DescribeKey",
            "kms:GetKeyPolicy",
            "kms:PutKeyPolicy",
            "kms:GetKeyRotationStatus",
            "kms:EnableKeyRotation",
            "kms:ListResourceTags",
            "kms:TagResource",
            "kms:UntagResource",
            "kms:ScheduleKeyDeletion",
        ],
    ),
    (
        "aws_kms_alias",
        &[
            "kms:CreateAlias",
            "kms:DeleteAlias",
            "kms:UpdateAlias",
            "kms:ListAliases",
        ],
    ),
    ("data.aws_caller_identity", &["sts:GetCallerIdentity"]),
    ("data.aws_region", &[]),
    ("data.aws_partition", &[]),
    ("data.aws_iam_policy_document", &[]),
    ("data.archive_file", &[]),
    ("terraform_data", &[]),
];

/// Actions AWS authorises on `*` only (no resource-level permissions), which alone may carry
/// `"Resource": "*"`, and then only as narrowly as a condition allows.
const WITHOUT_RESOURCE_LEVEL: &[&str] = &[
    "kms:CreateKey",
    "kms:ListAliases",
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DeleteQueryDefinition",
    "logs:DescribeLogGroups",
    "logs:DescribeQueryDefinitions",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutQueryDefinition",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
    "lambda:CreateEventSourceMapping",
    "lambda:DeleteEventSourceMapping",
    "lambda:UpdateEventSourceMapping",
    "lambda:ListEventSourceMappings",
    "sts:GetCallerIdentity",
];

fn deployer_policy_violations(policy: &serde_json::Value, types: &BTreeSet<String>) -> Vec<String> {
    let mut v = Vec::new();
    let mut granted: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for st in policy["Statement"].as_array().into_iter().flatten() {
        let list = |x: &serde_json::Value| match x {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        if st["Effect"] != "Allow" {
            continue;
        }
        let resources = list(&st["Resource"]);
        for action in list(&st["Action"]) {
            if action.contains('*') {
                v.push(format!("wildcard action {action}"));
            }
            if resources.iter().any(|r| r == "*")
                && !WITHOUT_RESOURCE_LEVEL.contains(&action.as_str())
            {
                v.push(format!("{action} on every resource"));
            }
            granted
                .entry(action)
                .or_default()
                .extend(resources.iter().cloned());
        }
    }
    for t in types {
        match DEPLOYER_ACTIONS.iter().find(|(name, _)| name == t) {
            None => v.push(format!(
                "{t}: the module uses it and the deployer table does not know it"
            )),
            Some((_, actions)) => {
                for a in *actions {
                    if !granted.contains_key(*a) {
                        v.push(format!("{t} needs {a}"));
                    }
                }
            }
        }
    }
    v
}

fn module_resource_types() -> BTreeSet<String> {
    let body = infra();
    body.blocks()
        .filter_map(|b| match (b.identifier(), b.labels().first()) {
            ("resource", Some(t)) => Some(t.as_str().to_owned()),
            ("data", Some(t)) => Some(format!("data.{}", t.as_str())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_deployer_policy_covers_every_resource_type_and_no_more() {
    let text = std::fs::read_to_string(repo_root().join("infra/deployer-policy.json")).unwrap();
    let policy: serde_json::Value = serde_json::from_str(&text).unwrap();
    let types = module_resource_types();
    assert!(types.len() > 20, "{types:?}");
    assert_eq!(
        deployer_policy_violations(&policy, &types),
        Vec::<String>::new()
    );
    // It bites: a new resource type, a dropped action, a wildcard.
    let mut more = types.clone();
    more.insert("aws_s3_bucket".into());
    assert_eq!(
        deployer_policy_violations(&policy, &more),
        ["aws_s3_bucket: the module uses it and the deployer table does not know it"]
    );
    let dropped: serde_json::Value =
        serde_json::from_str(&text.replace("\"sqs:SetQueueAttributes\",", "")).unwrap();
    assert_eq!(
        deployer_policy_violations(&dropped, &types),
        [
            "aws_sqs_queue needs sqs:SetQueueAttributes",
            "aws_sqs_queue_redrive_allow_policy needs sqs:SetQueueAttributes"
        ]
    );
    let wild: serde_json::Value =
        serde_json::from_str(&text.replace("\"sqs:CreateQueue\"", "\"sqs:*\"")).unwrap();
    assert!(
        deployer_policy_violations(&wild, &types).contains(&"wildcard action sqs:*".to_owned())
    );
}

// --- the metric catalogue --------------------------------------------------------------------

/// The dashboard's widgets as Terraform renders them for `detailed_metrics`, and every metric
/// of the wacapi namespace they read: (service, metric, dimensions besides Service).
fn dashboard_metrics(body: &Body, detailed: bool) -> Vec<(String, String, Vec<String>)> {
    use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
    fn concat(args: FuncArgs) -> Result<hcl::Value, String> {
        let mut out = Vec::new();
        for a in args.iter() {
            out.extend(a.as_array().ok_or("concat: not a list")?.iter().cloned());
        }
        Ok(hcl::Value::Array(out))
    }
    let obj = |pairs: &[(&str, hcl::Value)]| {
        hcl::Value::Object(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    };
    let named = |attr: &str, names: &[&str]| {
        obj(&names
            .iter()
            .map(|n| (*n, obj(&[(attr, hcl::Value::from(format!("{n}-name")))])))
            .collect::<Vec<_>>())
    };
    let mut ctx = Context::new();
    ctx.declare_func(
        "concat",
        FuncDef::builder()
            .variadic_param(ParamType::array_of(ParamType::Any))
            .build(concat),
    );
    ctx.declare_var(
        "var",
        obj(&[
            ("metrics_namespace", "wacapi".into()),
            ("detailed_metrics", detailed.into()),
            ("name", "wacapi".into()),
        ]),
    );
    ctx.declare_var(
        "data",
        obj(&[(
            "aws_region",
            obj(&[("current", obj(&[("region", "eu-west-1".into())]))]),
        )]),
    );
    ctx.declare_var("aws_sqs_queue", named("name", &["signals", "dead_letters"]));
    ctx.declare_var(
        "aws_lambda_function",
        named("function_name", &["ingest", "dispatch"]),
    );
    let dashboard = block(body, "resource", "aws_cloudwatch_dashboard", "main").body();
    let Some(Expression::FuncCall(call)) = attr(dashboard, "dashboard_body") else {
        panic!("dashboard_body is jsonencode(...)");
    };
    let rendered: serde_json::Value =
        serde_json::to_value(call.args[0].evaluate(&ctx).expect("the dashboard renders")).unwrap();
    let search =
        regex::Regex::new(r#"\{wacapi,([^}]*)\} MetricName="(\w+)" Service="([\w-]+)""#).unwrap();
    let mut out = Vec::new();
    for widget in rendered["widgets"].as_array().unwrap() {
        for line in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let line = line.as_array().unwrap();
            match line.first() {
                Some(serde_json::Value::String(ns)) if ns == "wacapi" => {
                    let name = line[1].as_str().unwrap().to_owned();
                    let pairs: Vec<&str> = line[2..].iter().filter_map(|v| v.as_str()).collect();
                    let mut service = String::new();
                    let mut dims = Vec::new();
                    for kv in pairs.chunks(2) {
                        if kv[0] == "Service" {
                            service = kv[1].to_owned();
                        } else {
                            dims.push(kv[0].to_owned());
                        }
                    }
                    out.push((service, name, dims));
                }
                Some(serde_json::Value::Object(o)) => {
                    if let Some(expr) = o.get("expression").and_then(|e| e.as_str())
                        && let Some(c) = search.captures(expr)
                    {
                        let dims = c[1]
                            .split(',')
                            .filter(|d| *d != "Service")
                            .map(str::to_owned)
                            .collect();
                        out.push((c[3].to_owned(), c[2].to_owned(), dims));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The alarms' wacapi metrics: (service, metric), each read under `[Service]` alone.
fn alarm_metrics(body: &Body) -> Vec<(String, String)> {
    use hcl::eval::{Context, Evaluate};
    let ctx = Context::new();
    let locals = body
        .blocks()
        .filter(|b| b.identifier() == "locals")
        .flat_map(|b| b.body().attributes())
        .find(|a| a.key() == "wacapi_alarms")
        .unwrap();
    let alarms: serde_json::Value =
        serde_json::to_value(locals.expr().evaluate(&ctx).unwrap()).unwrap();
    let mut out: Vec<(String, String)> = alarms
        .as_object()
        .unwrap()
        .values()
        .map(|a| {
            (
                a["service"].as_str().unwrap().to_owned(),
                a["metric"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let rate = block(
        body,
        "resource",
        "aws_cloudwatch_metric_alarm",
        "error_rate",
    )
    .body();
    let each: serde_json::Value =
        serde_json::to_value(attr(rate, "for_each").unwrap().evaluate(&ctx).unwrap()).unwrap();
    for v in each.as_object().unwrap().values() {
        for key in ["errors", "requests"] {
            out.push(("capi-dispatch".into(), v[key].as_str().unwrap().to_owned()));
        }
    }
    out
}

#[test]
fn alarms_and_widgets_read_only_what_the_catalogue_publishes() {
    use wacapi_shared::metrics::catalogue::allows;
    let body = infra();
    let alarms = alarm_metrics(&body);
    assert!(alarms.len() >= 11, "{alarms:?}");
    for (service, metric) in &alarms {
        assert!(
            allows(service, metric, &[], false),
            "the alarm on {service} {metric} reads a series the catalogue does not publish by default"
        );
    }
    for detailed in [false, true] {
        let widgets = dashboard_metrics(&body, detailed);
        assert!(widgets.len() > 30, "{widgets:?}");
        for (service, metric, dims) in &widgets {
            let dims: Vec<&str> = dims.iter().map(String::as_str).collect();
            assert!(
                allows(service, metric, &dims, detailed),
                "detailed_metrics = {detailed}: a widget reads {service} {metric} by {dims:?}"
            );
        }
        let by_rule = widgets
            .iter()
            .any(|(_, m, d)| m == "EventsSent" && d == &["Rule"]);
        assert_eq!(by_rule, detailed, "the breakdown widgets follow the switch");
    }
}

/// Metrics the module's alarms read (CloudWatch bills an alarm per metric it reads): each alarm
/// instance once, a metric-math alarm once per metric in its expression.
fn alarm_metric_count(body: &Body) -> usize {
    use hcl::eval::{Context, Evaluate};
    blocks(body, "resource", "aws_cloudwatch_metric_alarm")
        .map(|alarm| {
            let instances = match attr(alarm.body(), "for_each") {
                None => 1,
                Some(Expression::Object(o)) => o.len(),
                Some(other) => {
                    let locals: hcl::Map<String, hcl::Value> = body
                        .blocks()
                        .filter(|b| b.identifier() == "locals")
                        .flat_map(|b| b.body().attributes())
                        .filter_map(|a| {
                            a.expr()
                                .evaluate(&Context::new())
                                .ok()
                                .map(|v| (a.key().to_owned(), v))
                        })
                        .collect();
                    let mut ctx = Context::new();
                    ctx.declare_var("local", hcl::Value::Object(locals));
                    let value = other.evaluate(&ctx).unwrap();
                    value.as_object().map_or(1, |o| o.len())
                }
            };
            let metrics = alarm
                .body()
                .blocks()
                .filter(|b| b.identifier() == "metric_query")
                .filter(|q| q.body().blocks().any(|b| b.identifier() == "metric"))
                .count()
                .max(1);
            instances * metrics
        })
        .sum()
}

/// `bench/cost.py` prices what the module deploys: its alarm count is the module's, and a
/// month of 10,000 webhooks costs at most $12 fixed with the default metrics.
#[test]
fn the_cost_model_counts_what_the_module_deploys_and_stays_in_budget() {
    let out = std::process::Command::new("python3")
        .args(["bench/cost.py", "--webhooks", "10000"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let alarms = regex::Regex::new(r"fixed: (\d+) alarm metrics")
        .unwrap()
        .captures(&text)
        .unwrap()[1]
        .parse::<usize>()
        .unwrap();
    assert_eq!(alarms, alarm_metric_count(&infra()), "{text}");
    let fixed: f64 =
        regex::Regex::new(r"of which fixed \(before the first webhook\) \| \| ([\d.]+)")
            .unwrap()
            .captures(&text)
            .unwrap()[1]
            .parse()
            .unwrap();
    assert!(fixed <= 12.0, "fixed monthly cost {fixed}:\n{text}");
}
