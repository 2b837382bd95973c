//! The two execution paths under the store's one set of statements: SQLite through its C API
//! ([`super::sqlite`]) and PostgreSQL through sqlx's typed driver. Statements are written once
//! with `$n` placeholders, which both databases accept; parameters and rows cross this module as
//! [`Param`] and [`Row`], so every store operation is also written once.

#[cfg(feature = "postgres")]
use sqlx::postgres::{PgArguments, PgRow};
#[cfg(feature = "postgres")]
use sqlx::{Postgres, Row as _};

use super::error::StoreError;

/// A statement parameter: every column is TEXT or BIGINT.
#[derive(Clone, Debug)]
pub(crate) enum Param {
    /// TEXT, or NULL.
    Text(Option<String>),
    /// BIGINT, or NULL.
    Int(Option<i64>),
}

/// Values that bind as a [`Param`].
pub(crate) trait ToParam {
    fn to_param(&self) -> Param;
}

impl ToParam for str {
    fn to_param(&self) -> Param {
        Param::Text(Some(self.to_owned()))
    }
}

impl ToParam for String {
    fn to_param(&self) -> Param {
        Param::Text(Some(self.clone()))
    }
}

impl ToParam for crate::model::client::ClientId {
    fn to_param(&self) -> Param {
        Param::Text(Some(self.as_str().to_owned()))
    }
}

/// Scopes are stored space-delimited (RFC 6749 §3.3), as the wire carries them.
impl ToParam for crate::model::scope::ScopeSet {
    fn to_param(&self) -> Param {
        Param::Text(Some(self.to_string()))
    }
}

impl ToParam for i64 {
    fn to_param(&self) -> Param {
        Param::Int(Some(*self))
    }
}

impl<T: ToParam + ?Sized> ToParam for &T {
    fn to_param(&self) -> Param {
        (**self).to_param()
    }
}

impl ToParam for Option<String> {
    fn to_param(&self) -> Param {
        Param::Text(self.clone())
    }
}

impl ToParam for Option<&str> {
    fn to_param(&self) -> Param {
        Param::Text(self.map(str::to_owned))
    }
}

impl ToParam for Option<i64> {
    fn to_param(&self) -> Param {
        Param::Int(*self)
    }
}

/// `params![a, b, …]`: the parameters `$1, $2, …` of a statement.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::store::db::ToParam::to_param(&$value)),*]
    };
}
pub(crate) use params;

/// A result row of either database.
pub(crate) enum Row<'a> {
    /// A row and its statement's column names.
    #[cfg(feature = "sqlite")]
    Sqlite(&'a rusqlite::Row<'a>, &'a [Box<str>]),
    #[cfg(feature = "postgres")]
    Postgres(&'a PgRow),
}

/// A column type both databases decode: `String`, `i64` and their `Option`s. Each half of
/// the bound exists only when its driver is compiled in.
pub(crate) trait Column: SqliteColumn + PostgresColumn {}

impl<T: SqliteColumn + PostgresColumn> Column for T {}

/// A type SQLite decodes.
#[cfg(feature = "sqlite")]
pub(crate) trait SqliteColumn: rusqlite::types::FromSql {}
#[cfg(feature = "sqlite")]
impl<T: rusqlite::types::FromSql> SqliteColumn for T {}
#[cfg(not(feature = "sqlite"))]
pub(crate) trait SqliteColumn {}
#[cfg(not(feature = "sqlite"))]
impl<T> SqliteColumn for T {}

/// A type PostgreSQL decodes.
#[cfg(feature = "postgres")]
pub(crate) trait PostgresColumn:
    for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>
{
}
#[cfg(feature = "postgres")]
impl<T: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>> PostgresColumn for T {}
#[cfg(not(feature = "postgres"))]
pub(crate) trait PostgresColumn {}
#[cfg(not(feature = "postgres"))]
impl<T> PostgresColumn for T {}

/// Reads column `col` (its exact, lowercase name); a value of the wrong type is `Corrupt`,
/// never a default.
pub(crate) fn get<T: Column>(row: &Row<'_>, col: &str) -> Result<T, StoreError> {
    match row {
        #[cfg(feature = "sqlite")]
        Row::Sqlite(r, names) => {
            let index = names
                .iter()
                .position(|name| **name == *col)
                .ok_or_else(|| StoreError::Corrupt(format!("{col}: no such column")))?;
            r.get::<_, T>(index)
                .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
        }
        #[cfg(feature = "postgres")]
        Row::Postgres(r) => r
            .try_get::<T, _>(col)
            .map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))),
    }
}

/// A statement with its parameters bound, for PostgreSQL.
#[cfg(feature = "postgres")]
pub(crate) fn pg_query(
    sql: &'static str,
    params: Vec<Param>,
) -> sqlx::query::Query<'static, Postgres, PgArguments> {
    params.into_iter().fold(sqlx::query(sql), |q, p| match p {
        Param::Text(v) => q.bind(v),
        Param::Int(v) => q.bind(v),
    })
}

/// A statement whose parameters are columns: `$n` is bound to the array of every row's n-th
/// parameter (PostgreSQL's `UNNEST` turns them back into rows). Every row must have the same
/// parameter types in the same order, as rows built by one function do; a row that differs is
/// refused rather than bound to a column of another type.
#[cfg(feature = "postgres")]
pub(crate) fn pg_columns_query(
    sql: &'static str,
    rows: Vec<Vec<Param>>,
) -> Result<sqlx::query::Query<'static, Postgres, PgArguments>, StoreError> {
    enum Column {
        Text(Vec<Option<String>>),
        Int(Vec<Option<i64>>),
    }
    let mut columns: Vec<Column> = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        if i == 0 {
            columns = row
                .iter()
                .map(|p| match p {
                    Param::Text(_) => Column::Text(Vec::new()),
                    Param::Int(_) => Column::Int(Vec::new()),
                })
                .collect();
        }
        if row.len() != columns.len() {
            return Err(StoreError::Corrupt(
                "rows of one batch differ in shape".into(),
            ));
        }
        for (column, param) in columns.iter_mut().zip(row) {
            match (column, param) {
                (Column::Text(values), Param::Text(v)) => values.push(v),
                (Column::Int(values), Param::Int(v)) => values.push(v),
                _ => {
                    return Err(StoreError::Corrupt(
                        "rows of one batch differ in shape".into(),
                    ));
                }
            }
        }
    }
    Ok(columns
        .into_iter()
        .fold(sqlx::query(sql), |q, column| match column {
            Column::Text(values) => q.bind(values),
            Column::Int(values) => q.bind(values),
        }))
}

/// The embedded migrations, shared by both drivers.
pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub(crate) fn parse_json_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("json list: {e}")))
}

pub(crate) fn to_json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}
