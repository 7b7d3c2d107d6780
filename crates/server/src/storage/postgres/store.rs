//! The long-term key-value store.

use super::Tx;
use super::codec::{
    ITEM_COLUMNS, decode_item, from_json, get, namespace_key, namespace_range, to_json,
};
use super::threads::paged;
use crate::storage::StorageResult;
use crate::storage::rules::{contains, namespace_page};
use errand_protocol::{
    JsonObject, ListNamespacesResponse, StoreItem, StoreListNamespacesRequest, StoreSearchRequest,
    Timestamp,
};
use tokio_postgres::types::ToSql;

/// A condition on `namespace` (its parameters numbered from `$1`), with its arguments, that
/// holds for the namespaces under `prefix` (see [`namespace_range`]), compared byte-wise
/// (`COLLATE "C"`) as in SQLite.
fn prefix_condition(prefix: &[String]) -> StorageResult<(String, Vec<String>)> {
    Ok(match namespace_range(prefix)? {
        None => ("true".to_owned(), Vec::new()),
        Some(range) => (
            "(namespace = $1 OR (namespace >= $2 AND namespace < $3))".to_owned(),
            range.into(),
        ),
    })
}

pub(super) async fn put_item(
    tx: &Tx<'_>,
    namespace: &[String],
    key: &str,
    value: &JsonObject,
    at: Timestamp,
) -> StorageResult<()> {
    let statement = tx
        .prepare(
            "INSERT INTO store_items (namespace, key, value, created_at, updated_at) \
             VALUES ($1, $2, $3::text::jsonb, $4, $4) \
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .await?;
    let (namespace, value) = (namespace_key(namespace)?, to_json(value)?);
    tx.execute(
        &statement,
        &[&namespace, &key, &value, &at.timestamp_micros()],
    )
    .await?;
    Ok(())
}

pub(super) async fn get_item(
    tx: &Tx<'_>,
    namespace: &[String],
    key: &str,
) -> StorageResult<Option<StoreItem>> {
    let sql = format!("SELECT {ITEM_COLUMNS} FROM store_items WHERE namespace = $1 AND key = $2");
    let statement = tx.prepare(&sql).await?;
    let namespace = namespace_key(namespace)?;
    let rows = tx.query(&statement, &[&namespace, &key]).await?;
    rows.first().map(decode_item).transpose()
}

pub(super) async fn delete_item(
    tx: &Tx<'_>,
    namespace: &[String],
    key: &str,
) -> StorageResult<bool> {
    let statement = tx
        .prepare("DELETE FROM store_items WHERE namespace = $1 AND key = $2")
        .await?;
    let namespace = namespace_key(namespace)?;
    Ok(tx.execute(&statement, &[&namespace, &key]).await? > 0)
}

pub(super) async fn search_items(
    tx: &Tx<'_>,
    search: &StoreSearchRequest,
) -> StorageResult<Vec<StoreItem>> {
    let (condition, mut args) =
        prefix_condition(search.namespace_prefix.as_deref().unwrap_or(&[]))?;
    let filter = search.filter.as_ref().filter(|filter| !filter.is_empty());
    let mut sql = format!("SELECT {ITEM_COLUMNS} FROM store_items WHERE {condition}");
    // `@>` narrows to a superset of what `rules::contains` accepts; the exact test follows.
    if let Some(filter) = filter {
        args.push(to_json(filter)?);
        sql.push_str(&format!(" AND value @> ${}::text::jsonb", args.len()));
    }
    sql.push_str(&format!(
        " ORDER BY updated_at DESC, namespace, key LIMIT ${} OFFSET ${}",
        args.len() + 1,
        args.len() + 2
    ));
    let refs: Vec<&(dyn ToSql + Sync)> =
        args.iter().map(|arg| arg as &(dyn ToSql + Sync)).collect();
    paged(
        tx,
        &sql,
        &refs,
        search.offset,
        search.limit,
        filter.is_none(),
        |row| {
            let item = decode_item(row)?;
            Ok(filter
                .is_none_or(|filter| contains(Some(&item.value), filter))
                .then_some(item))
        },
    )
    .await
}

pub(super) async fn list_namespaces(
    tx: &Tx<'_>,
    request: &StoreListNamespacesRequest,
) -> StorageResult<ListNamespacesResponse> {
    let (condition, args) = prefix_condition(request.prefix.as_deref().unwrap_or(&[]))?;
    let sql = format!("SELECT DISTINCT namespace FROM store_items WHERE {condition}");
    let statement = tx.prepare(&sql).await?;
    let refs: Vec<&(dyn ToSql + Sync)> =
        args.iter().map(|arg| arg as &(dyn ToSql + Sync)).collect();
    let rows = tx.query(&statement, &refs).await?;
    let stored = rows
        .iter()
        .map(|row| from_json(get(row, 0)?, "store_items.namespace"))
        .collect::<StorageResult<Vec<Vec<String>>>>()?;
    Ok(namespace_page(request, stored))
}
