//! (being written)
use std::sync::Arc;

use crate::Context;

pub async fn run(_ctx: Arc<Context>) -> anyhow::Result<()> {
    std::future::pending::<()>().await;
    Ok(())
}
