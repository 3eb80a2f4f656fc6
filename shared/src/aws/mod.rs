//! The AWS adapters of the ports: SQS FIFO queues ([`sqs`]), the DynamoDB click store and
//! sent-ledger ([`dynamo`]), Secrets Manager ([`secrets_manager`]).

pub mod dynamo;
pub mod secrets_manager;
pub mod sqs;
