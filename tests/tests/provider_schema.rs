//! Every Terraform directory (the module in `infra/`, the roots under `infra/examples/`) held
//! against the AWS and archive providers' schemas, offline: the jsii assemblies of npm's
//! `@cdktf/provider-aws` 21.22.1 (AWS provider 6.25.0) and `@cdktf/provider-archive` 11.0.1
//! (archive 2.7.1), which the README's test command caches. Each kind of mistake is also made
//! on a copy, to prove the check catches it.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::OnceLock;

use hcl::Body;
use wacapi_tests::repo_root;
use wacapi_tests::terraform_schema::{Schemas, load_dir};

/// The schemas, loaded once per test binary; `None` when `WACAPI_PROVIDER_SCHEMA_DIR` is unset
/// (plain `cargo test`: `./scripts/test` always sets it, and then a missing file fails).
fn schemas() -> Option<&'static Schemas> {
    static SCHEMAS: OnceLock<Option<Schemas>> = OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            let dir = std::env::var("WACAPI_PROVIDER_SCHEMA_DIR").ok()?;
            Some(Schemas::load(&PathBuf::from(dir)).unwrap_or_else(|e| panic!("{e}")))
        })
        .as_ref()
}

fn terraform_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![repo_root().join("infra")];
    for entry in std::fs::read_dir(repo_root().join("infra/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    dirs
}

#[test]
fn every_terraform_directory_fits_the_provider_schemas() {
    let Some(schemas) = schemas() else {
        eprintln!("WACAPI_PROVIDER_SCHEMA_DIR is unset: run ./scripts/test for the schema check");
        return;
    };
    assert!(
        schemas.types.len() > 1500,
        "{} types: the assemblies were read",
        schemas.types.len()
    );
    for dir in terraform_dirs() {
        let v = schemas.violations(&load_dir(&dir));
        assert!(v.is_empty(), "{}: {v:#?}", dir.display());
    }
}

/// The module's `.tf` files with `find` replaced by `replace` in `file`.
fn mutated(file: &str, find: &str, replace: &str) -> Body {
    let dir = repo_root().join("infra");
    let tmp = std::env::temp_dir().join(format!(
        "wacapi-schema-{}-{}",
        std::process::id(),
        file.replace('.', "-")
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "tf") {
            let mut text = std::fs::read_to_string(&path).unwrap();
            if path.file_name().unwrap() == file {
                assert!(text.contains(find), "{file} contains {find:?}");
                text = text.replacen(find, replace, 1);
            }
            std::fs::write(tmp.join(path.file_name().unwrap()), text).unwrap();
        }
    }
    let body = load_dir(&tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    body
}

#[test]
fn each_kind_of_mistake_is_caught() {
    let Some(schemas) = schemas() else {
        return;
    };
    for (file, find, replace, want) in [
        (
            "queues.tf",
            "  fifo_queue                  = true\n",
            "  fifo_queue                  = true\n  colour = \"blue\"\n",
            "resource.aws_sqs_queue.dead_letters: unknown argument colour",
        ),
        (
            "lambda.tf",
            "  environment {\n    variables = {\n      WACAPI_SIGNAL_QUEUE_URL",
            "  environment = {\n    variables = {\n      WACAPI_SIGNAL_QUEUE_URL",
            "resource.aws_lambda_function.ingest: environment is a block, written as an attribute",
        ),
        (
            "lambda.tf",
            "  tags = local.tags\n\n  lifecycle {",
            "  tags {\n  }\n\n  lifecycle {",
            "resource.aws_lambda_function.ingest: tags is an attribute, written as a block",
        ),
        (
            "lambda.tf",
            "  function_name    = local.ingest_name\n",
            "",
            "resource.aws_lambda_function.ingest: required argument function_name is missing",
        ),
        (
            "dynamodb.tf",
            "  point_in_time_recovery {\n    enabled = true\n  }\n",
            "  point_in_time_recovery {\n    enabled = true\n  }\n  point_in_time_recovery {\n    enabled = true\n  }\n",
            "resource.aws_dynamodb_table.main: point_in_time_recovery may appear once",
        ),
        (
            "outputs.tf",
            "value       = aws_sqs_queue.signals.url",
            "value       = aws_sqs_queue.signals.queue_url",
            "aws_sqs_queue.signals.queue_url: aws_sqs_queue exports no queue_url",
        ),
        (
            "iam.tf",
            "resources = [aws_dynamodb_table.main.arn]",
            "resources = [aws_dynamodb_table.mian.arn]",
            "reference to undeclared aws_dynamodb_table.mian",
        ),
        (
            "rules.tf",
            "data.archive_file.rules.output_base64sha256",
            "data.archive_file.rules.output_sha256sum",
            "data.archive_file.rules.output_sha256sum: archive_file exports no output_sha256sum",
        ),
        (
            "monitoring.tf",
            "resource \"aws_sns_topic\" \"alarms\"",
            "resource \"aws_sns_topics\" \"alarms\"",
            "resource type aws_sns_topics does not exist",
        ),
    ] {
        let v = schemas.violations(&mutated(file, find, replace));
        assert!(
            v.iter().any(|m| m.contains(want)),
            "{file}: {want:?} not caught: {v:#?}"
        );
    }
}
