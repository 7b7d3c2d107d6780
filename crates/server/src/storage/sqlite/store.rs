//! The long-term key-value store.

use super::codec::{Db, ITEM_COLUMNS, ItemRow, from_json, namespace_key, namespace_range, to_json};
use crate::storage::StorageResult;
use crate::storage::rules::{contains, namespace_page};
use errand_protocol::{
    JsonObject, ListNamespacesResponse, StoreItem, StoreListNamespacesRequest, StoreSearchRequest,
    Timestamp,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

/// A SQL condition on `namespace`, with its arguments, that holds for the namespaces under
/// `prefix` (see [`namespace_range`]).
fn prefix_condition(prefix: &[String]) -> StorageResult<(String, Vec<SqlValue>)> {
    Ok(match namespace_range(prefix)? {
        None => ("1 = 1".to_owned(), Vec::new()),
        Some(range) => (
            "(namespace = ? OR (namespace >= ? AND namespace < ?))".to_owned(),
            range.into_iter().map(SqlValue::Text).collect(),
        ),
    })
}

pub(super) fn put_item(
    conn: &Connection,
    namespace: &[String],
    key: &str,
    value: &JsonObject,
    at: Timestamp,
) -> StorageResult<()> {
    conn.prepare_cached(
        "INSERT INTO store_items (namespace, key, value, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?4) \
         ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, \
         updated_at = excluded.updated_at",
    )
    .db()?
    .execute(params![
        namespace_key(namespace)?,
        key,
        to_json(value)?,
        at.timestamp_micros()
    ])
    .db()?;
    Ok(())
}

pub(super) fn get_item(
    conn: &Connection,
    namespace: &[String],
    key: &str,
) -> StorageResult<Option<StoreItem>> {
    let sql = format!("SELECT {ITEM_COLUMNS} FROM store_items WHERE namespace = ?1 AND key = ?2");
    conn.prepare_cached(&sql)
        .db()?
        .query_row(params![namespace_key(namespace)?, key], ItemRow::read)
        .optional()
        .db()?
        .map(ItemRow::decode)
        .transpose()
}

pub(super) fn delete_item(
    conn: &Connection,
    namespace: &[String],
    key: &str,
) -> StorageResult<bool> {
    let deleted = conn
        .prepare_cached("DELETE FROM store_items WHERE namespace = ?1 AND key = ?2")
        .db()?
        .execute(params![namespace_key(namespace)?, key])
        .db()?;
    Ok(deleted > 0)
}

pub(super) fn search_items(
    conn: &Connection,
    search: &StoreSearchRequest,
) -> StorageResult<Vec<StoreItem>> {
    let (offset, limit) = (search.offset as usize, search.limit as usize);
    let mut found = Vec::new();
    if limit == 0 {
        return Ok(found);
    }
    let (condition, args) = prefix_condition(search.namespace_prefix.as_deref().unwrap_or(&[]))?;
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM store_items WHERE {condition} \
         ORDER BY updated_at DESC, namespace, key"
    );
    let mut statement = conn.prepare_cached(&sql).db()?;
    let mut rows = statement.query(params_from_iter(args)).db()?;
    let mut skipped = 0;
    while let Some(row) = rows.next().db()? {
        let item = ItemRow::read(row).db()?.decode()?;
        if let Some(filter) = &search.filter
            && !contains(Some(&item.value), filter)
        {
            continue;
        }
        if skipped < offset {
            skipped += 1;
            continue;
        }
        found.push(item);
        if found.len() == limit {
            break;
        }
    }
    Ok(found)
}

pub(super) fn list_namespaces(
    conn: &Connection,
    request: &StoreListNamespacesRequest,
) -> StorageResult<ListNamespacesResponse> {
    let (condition, args) = prefix_condition(request.prefix.as_deref().unwrap_or(&[]))?;
    let sql = format!("SELECT DISTINCT namespace FROM store_items WHERE {condition}");
    let mut statement = conn.prepare_cached(&sql).db()?;
    let stored = statement
        .query_map(params_from_iter(args), |row| row.get::<_, String>(0))
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    let stored = stored
        .iter()
        .map(|text| from_json(text, "store_items.namespace"))
        .collect::<StorageResult<Vec<Vec<String>>>>()?;
    Ok(namespace_page(request, stored))
}
