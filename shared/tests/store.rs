//! The store contract ([`wacapi_shared::store::contract`]) against the in-memory store, as the
//! DynamoDB adapter (`wacapi-tests`) and the CLI's SQLite database run it against themselves.

use wacapi_shared::store::{MemoryStore, contract};

#[tokio::test]
async fn the_memory_store_keeps_the_store_contract() {
    let store = MemoryStore::new();
    contract::all(&store, async || store.report()).await;
}
