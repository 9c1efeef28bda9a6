//! What a restore test finds: each table's row count against the one recorded at backup,
//! and the database's own integrity checks. These structures are part of `verify --json`'s
//! output: their fields are a contract.

use serde::Serialize;

/// One table's row count: recorded at backup and found after the restore.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub expected_rows: Option<u64>,
    pub restored_rows: Option<u64>,
    pub ok: bool,
}

/// One integrity check of the restored database.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// `SELECT COUNT(*)` of each table, given quoted (`None`: it could not be quoted), over one
/// connection; `None` where a count fails. The connection is closed afterwards.
pub(crate) async fn count_each<C>(mut c: C, quoted: Vec<Option<String>>) -> Vec<Option<u64>>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    (i64,): for<'r> sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
    for<'q> <C::Database as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, C::Database>,
{
    let mut out = Vec::with_capacity(quoted.len());
    for table in quoted {
        let n = match table {
            Some(quoted) => sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {quoted}"))
                .fetch_one(&mut c)
                .await
                .ok(),
            None => None,
        };
        out.push(n.map(|n| n.max(0) as u64));
    }
    let _ = c.close().await;
    out
}
