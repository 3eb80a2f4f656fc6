//! The AWS adapters of the ports: SQS FIFO queues ([`sqs`]), the DynamoDB click store,
//! sent-ledger and report aggregates ([`dynamo`]), Secrets Manager ([`secrets_manager`]); and
//! the operator's read of the report ([`report`], not the functions').

pub mod dynamo;
pub mod report;
pub mod secrets_manager;
pub mod sqs;
