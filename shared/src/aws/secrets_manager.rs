//! The Secrets Manager adapter of [`SecretSource`]: a secret read by ARN.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use secrecy::SecretString;

use crate::secrets::{SecretError, SecretSource};

/// A secret in AWS Secrets Manager.
#[derive(Debug, Clone)]
pub struct SecretsManagerSource {
    client: Client,
    secret_id: String,
}

impl SecretsManagerSource {
    /// A secret by ARN (or name).
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }
}

impl SecretSource for SecretsManagerSource {
    async fn fetch(&self) -> Result<SecretString, SecretError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| SecretError::Fetch(DisplayErrorContext(e).to_string()))?;
        out.secret_string()
            .filter(|s| !s.trim().is_empty())
            .map(|s| SecretString::from(s.to_owned()))
            .ok_or(SecretError::Empty)
    }
}
