//! Statements written as SQL text that each backend prepares once per connection.
//!
//! diesel caches a prepared statement only for queries of a static type; it never caches an
//! `UPDATE` (a changeset's shape may vary between calls) nor a `sql_query`, so each of those is
//! parsed and planned by the database on every execution. On the hot paths that cost more than
//! running the statement: the four-CTE rotation took PostgreSQL ~1 ms to plan, and on the SQLite
//! writer re-preparing the two rotation `UPDATE`s took a sixth of its time. A `Prepared<S>` has a
//! static id (`S`, one type per SQL text), so it is prepared once per connection and afterwards
//! only bound and run.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{Array, BigInt, Bool, HasSqlType, Nullable, Text, Untyped};
use diesel::sqlite::Sqlite;

/// SQL with `$name` parameters (each occurrence becomes one bind parameter: `$1`… on
/// PostgreSQL, `?` on SQLite). `S` names the statement in diesel's cache.
pub struct Prepared<'a, S> {
    sql: &'static str,
    binds: Vec<(&'static str, Param<'a>)>,
    statement: PhantomData<S>,
}

/// One parameter's value with its SQL type.
pub enum Param<'a> {
    Text(&'a str),
    OptionalText(Option<&'a str>),
    BigInt(i64),
    OptionalBigInt(Option<i64>),
    Bool(bool),
    /// PostgreSQL only.
    OptionalTextArray(Option<Vec<String>>),
}

impl<'a, S> Prepared<'a, S> {
    pub fn new(sql: &'static str, binds: Vec<(&'static str, Param<'a>)>) -> Self {
        Self {
            sql,
            binds,
            statement: PhantomData,
        }
    }
}

impl<S: 'static> QueryId for Prepared<'_, S> {
    type QueryId = S;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<S> Query for Prepared<'_, S> {
    type SqlType = Untyped;
}

impl<S, Conn> RunQueryDsl<Conn> for Prepared<'_, S> {}

impl<S, DB> QueryFragment<DB> for Prepared<'_, S>
where
    DB: Backend + ArrayParam + HasSqlType<Text> + HasSqlType<BigInt> + HasSqlType<Bool>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    bool: ToSql<Bool, DB>,
{
    /// The SQL with each `$name` replaced by its parameter, bound with its type.
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let mut rest = self.sql;
        while let Some(at) = rest.find('$') {
            out.push_sql(&rest[..at]);
            let tail = &rest[at + 1..];
            let len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..len];
            let Some((_, param)) = self.binds.iter().find(|(n, _)| *n == name) else {
                let e = format!("the statement has no parameter `{name}`");
                return Err(diesel::result::Error::QueryBuilderError(e.into()));
            };
            match param {
                Param::Text(v) => out.push_bind_param::<Text, _>(*v)?,
                Param::OptionalText(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                Param::BigInt(v) => out.push_bind_param::<BigInt, _>(v)?,
                Param::OptionalBigInt(v) => out.push_bind_param::<Nullable<BigInt>, _>(v)?,
                Param::Bool(v) => out.push_bind_param::<Bool, _>(v)?,
                Param::OptionalTextArray(v) => DB::push_text_array(&mut out, v)?,
            }
            rest = &tail[len..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

/// How a backend binds a text array: PostgreSQL has array parameters, SQLite none.
pub trait ArrayParam: Backend + Sized {
    fn push_text_array<'b>(
        out: &mut AstPass<'_, 'b, Self>,
        value: &'b Option<Vec<String>>,
    ) -> QueryResult<()>;
}

impl ArrayParam for Pg {
    fn push_text_array<'b>(
        out: &mut AstPass<'_, 'b, Self>,
        value: &'b Option<Vec<String>>,
    ) -> QueryResult<()> {
        out.push_bind_param::<Nullable<Array<Text>>, _>(value)
    }
}

impl ArrayParam for Sqlite {
    fn push_text_array<'b>(
        _: &mut AstPass<'_, 'b, Self>,
        _: &'b Option<Vec<String>>,
    ) -> QueryResult<()> {
        Err(diesel::result::Error::QueryBuilderError(
            "SQLite has no array parameters".into(),
        ))
    }
}
