//! One connection to either SQLite or PostgreSQL, with the few operations the store needs.
//!
//! The store's SQL is written once, in the subset both engines accept: `?N` placeholders,
//! `INSERT … ON CONFLICT`, `RETURNING`, `IS NOT DISTINCT FROM`, `CASE` instead of the
//! two-argument `MAX`/`MIN`, aliased subqueries, `CAST(SUM(…) AS BIGINT)`. For PostgreSQL
//! [`pg_sql`] rewrites placeholders to `$N` and `INSERT OR IGNORE` to `ON CONFLICT DO
//! NOTHING`, and [`pg_ddl`] maps the migration scripts' column types. Arguments carry their
//! type ([`Arg`]), so PostgreSQL never has to guess a parameter's type; results come back as
//! [`Row`]s of owned values, read with [`Row::get`].
//!
//! Both connections are used from one thread at a time (the store is `Send`, not `Sync`);
//! the PostgreSQL client sits in a `RefCell` because its calls take `&mut`.

use std::cell::RefCell;
use std::collections::HashMap;

use postgres::types::Type;

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("{}", pg_message(.0))]
    Postgres(#[from] postgres::Error),
    /// A value did not have the type the store expected.
    #[error("column {column}: {what}")]
    Type {
        /// Column index.
        column: usize,
        /// What was wrong.
        what: String,
    },
    /// A query that must return a row returned none.
    #[error("no row returned")]
    NoRow,
}

impl DbError {
    /// The database cannot be reached now, but may be again soon: the PostgreSQL server is
    /// down, restarting or refusing connections, or an SQLite lock outlasted the busy
    /// timeout. Not a fault of the request: the API answers 503 with `Retry-After`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            DbError::Postgres(e) => {
                use postgres::error::SqlState;
                if e.is_closed() {
                    return true;
                }
                if let Some(code) = e.code() {
                    // Class 08 (connection exception), the server shutting down or starting,
                    // too many connections.
                    return code.code().starts_with("08")
                        || [
                            SqlState::ADMIN_SHUTDOWN,
                            SqlState::CRASH_SHUTDOWN,
                            SqlState::CANNOT_CONNECT_NOW,
                            SqlState::TOO_MANY_CONNECTIONS,
                        ]
                        .contains(code);
                }
                // No server answer at all: the connection could not be made or broke.
                let mut src = std::error::Error::source(e);
                while let Some(c) = src {
                    if c.is::<std::io::Error>() {
                        return true;
                    }
                    src = c.source();
                }
                false
            }
            _ => false,
        }
    }
}

/// PostgreSQL's own message and detail: `postgres::Error`'s `Display` says only "db error".
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(c) = src {
                s.push_str(&format!(": {c}"));
                src = c.source();
            }
            s
        }
    }
}

/// A query argument, with its SQL type even when it is NULL.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// `BIGINT` (SQLite `INTEGER`); booleans are 0/1.
    I64(Option<i64>),
    /// `DOUBLE PRECISION` (SQLite `REAL`).
    F64(Option<f64>),
    /// `TEXT`.
    Text(Option<&'a str>),
    /// `BYTEA` (SQLite `BLOB`).
    Blob(Option<&'a [u8]>),
}

/// A Rust value usable as a query argument.
pub trait ToArg {
    /// The argument.
    fn to_arg(&self) -> Arg<'_>;
}

macro_rules! to_arg {
    ($($t:ty => |$v:ident| $e:expr;)*) => {
        $(impl ToArg for $t {
            fn to_arg(&self) -> Arg<'_> {
                let $v = self;
                $e
            }
        })*
    };
}

to_arg! {
    i64 => |v| Arg::I64(Some(*v));
    Option<i64> => |v| Arg::I64(*v);
    u32 => |v| Arg::I64(Some(i64::from(*v)));
    bool => |v| Arg::I64(Some(i64::from(*v)));
    f64 => |v| Arg::F64(Some(*v));
    Option<f64> => |v| Arg::F64(*v);
    str => |v| Arg::Text(Some(v));
    String => |v| Arg::Text(Some(v));
    Option<String> => |v| Arg::Text(v.as_deref());
    Option<&str> => |v| Arg::Text(*v);
    [u8] => |v| Arg::Blob(Some(v));
    Vec<u8> => |v| Arg::Blob(Some(v));
}

impl<T: ToArg + ?Sized> ToArg for &T {
    fn to_arg(&self) -> Arg<'_> {
        (**self).to_arg()
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput::Borrowed, ValueRef};
        Ok(Borrowed(match *self {
            Arg::I64(Some(v)) => ValueRef::Integer(v),
            Arg::F64(Some(v)) => ValueRef::Real(v),
            Arg::Text(Some(v)) => ValueRef::Text(v.as_bytes()),
            Arg::Blob(Some(v)) => ValueRef::Blob(v),
            Arg::I64(None) | Arg::F64(None) | Arg::Text(None) | Arg::Blob(None) => ValueRef::Null,
        }))
    }
}

/// One value read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// NULL.
    Null,
    /// An integer (PostgreSQL booleans read as 0/1).
    I64(i64),
    /// A float.
    F64(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(Vec<Val>);

/// A Rust type a column can be read as.
pub trait FromVal: Sized {
    /// Converts, or says why not.
    fn from_val(v: Val) -> Result<Self, String>;
}

impl FromVal for i64 {
    fn from_val(v: Val) -> Result<Self, String> {
        match v {
            Val::I64(i) => Ok(i),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}

impl FromVal for u32 {
    fn from_val(v: Val) -> Result<Self, String> {
        let i = i64::from_val(v)?;
        u32::try_from(i).map_err(|_| format!("{i} is out of range"))
    }
}

impl FromVal for bool {
    fn from_val(v: Val) -> Result<Self, String> {
        Ok(i64::from_val(v)? != 0)
    }
}

impl FromVal for f64 {
    fn from_val(v: Val) -> Result<Self, String> {
        match v {
            Val::F64(f) => Ok(f),
            Val::I64(i) => Ok(i as f64),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}

impl FromVal for String {
    fn from_val(v: Val) -> Result<Self, String> {
        match v {
            Val::Text(s) => Ok(s),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl FromVal for Vec<u8> {
    fn from_val(v: Val) -> Result<Self, String> {
        match v {
            Val::Blob(b) => Ok(b),
            Val::Text(s) => Ok(s.into_bytes()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}

impl<T: FromVal> FromVal for Option<T> {
    fn from_val(v: Val) -> Result<Self, String> {
        match v {
            Val::Null => Ok(None),
            v => T::from_val(v).map(Some),
        }
    }
}

impl Row {
    /// Column `i` as a `T`.
    pub fn get<T: FromVal>(&self, i: usize) -> Result<T, DbError> {
        let v = self.0.get(i).cloned().ok_or_else(|| DbError::Type {
            column: i,
            what: "no such column".into(),
        })?;
        T::from_val(v).map_err(|what| DbError::Type { column: i, what })
    }
}

/// The advisory lock collectors sharing a PostgreSQL database take to migrate it.
const PG_MIGRATION_LOCK: i64 = 0x696f_635f_6d69_6772; // "ioc_migr"

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Most prepared statements kept per PostgreSQL connection.
const STATEMENTS_MAX: usize = 256;

/// Opens a new PostgreSQL connection with the settings (and TLS) of the first.
pub type Connect = Box<dyn Fn() -> Result<postgres::Client, postgres::Error> + Send + Sync>;

struct Pg {
    client: PgClient,
    /// Prepared statements by the store's SQL text (before translation).
    statements: HashMap<String, postgres::Statement>,
    connect: Connect,
    /// Between `BEGIN` and its end. A connection lost then is an error, never a reconnect:
    /// the rest of the transaction would run outside it.
    in_tx: bool,
}

impl Pg {
    /// Reconnects if the server closed the connection (a restart, a network cut) and no
    /// transaction is open; the caller's retry then finds a working connection.
    fn ready(&mut self) -> Result<(), DbError> {
        if self.client.is_closed() && !self.in_tx {
            tracing::warn!("the PostgreSQL connection was closed; reconnecting");
            self.client = PgClient(Some((self.connect)()?));
            self.statements.clear();
        }
        Ok(())
    }
}

impl Pg {
    /// Runs `f` on a ready connection. Where the connection is found dead only by `f` (the
    /// server restarted since the last call) and `f` is `harmless` to repeat outside a
    /// transaction, it runs once more on a new connection, so the first request after an
    /// outage does not fail.
    fn once_more<T>(
        &mut self,
        harmless: bool,
        f: impl Fn(&mut Pg) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.ready()?;
        match f(self) {
            Err(_) if harmless && !self.in_tx && self.client.is_closed() => {
                self.ready()?;
                f(self)
            }
            r => r,
        }
    }
}

/// The driver's client, closed off the async runtime (its `Drop` blocks, see
/// [`off_runtime`]).
struct PgClient(Option<postgres::Client>);

impl std::ops::Deref for PgClient {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        self.0.as_ref().expect("taken only in drop")
    }
}

impl std::ops::DerefMut for PgClient {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        self.0.as_mut().expect("taken only in drop")
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            off_runtime(move || drop(c));
        }
    }
}

enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<Pg>>),
}

/// A connection (see the module docs).
pub struct Db {
    conn: Conn,
}

impl Db {
    /// Wraps an open SQLite connection.
    pub fn sqlite(conn: rusqlite::Connection) -> Db {
        // The store has a few dozen distinct statements; keep them all prepared.
        conn.set_prepared_statement_cache_capacity(128);
        Db {
            conn: Conn::Sqlite(conn),
        }
    }

    /// Connects to PostgreSQL with `connect`, which also serves to reconnect later.
    pub fn postgres(connect: Connect) -> Result<Db, DbError> {
        let client = off_runtime(&connect)?;
        Ok(Db {
            conn: Conn::Postgres(Box::new(RefCell::new(Pg {
                client: PgClient(Some(client)),
                statements: HashMap::new(),
                connect,
                in_tx: false,
            }))),
        })
    }

    /// The engine.
    pub fn dialect(&self) -> Dialect {
        match self.conn {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite connection, for the few SQLite-only statements (pragmas).
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.conn {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres(_) => None,
        }
    }

    /// Runs a script of statements without arguments (migrations).
    pub fn batch(&self, sql: &str) -> Result<(), DbError> {
        match &self.conn {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(pg) => {
                let mut guard = pg.borrow_mut();
                let pg: &mut Pg = &mut guard;
                // BEGIN changes nothing: if the connection turns out to be dead only now,
                // it is tried again on a new one.
                off_runtime(|| {
                    pg.once_more(sql == "BEGIN", |pg| Ok(pg.client.batch_execute(sql)?))
                })
            }
        }
    }

    /// Runs one statement; returns the rows it changed.
    pub fn execute(&self, sql: &str, args: &[&dyn ToArg]) -> Result<u64, DbError> {
        match &self.conn {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let n =
                    stmt.execute(rusqlite::params_from_iter(args.iter().map(|a| a.to_arg())))?;
                Ok(n as u64)
            }
            Conn::Postgres(pg) => {
                let mut guard = pg.borrow_mut();
                let pg: &mut Pg = &mut guard;
                let (types, values) = pg_args(args);
                off_runtime(|| {
                    pg.ready()?;
                    let stmt = pg.prepare(sql, &types)?;
                    Ok(pg.client.execute(&stmt, &pg_refs(&values))?)
                })
            }
        }
    }

    /// Runs one query; returns every row.
    pub fn query(&self, sql: &str, args: &[&dyn ToArg]) -> Result<Vec<Row>, DbError> {
        match &self.conn {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let n = stmt.column_count();
                let mut rows =
                    stmt.query(rusqlite::params_from_iter(args.iter().map(|a| a.to_arg())))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut vals = Vec::with_capacity(n);
                    for i in 0..n {
                        use rusqlite::types::ValueRef;
                        vals.push(match r.get_ref(i)? {
                            ValueRef::Null => Val::Null,
                            ValueRef::Integer(v) => Val::I64(v),
                            ValueRef::Real(v) => Val::F64(v),
                            ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                            ValueRef::Blob(b) => Val::Blob(b.to_vec()),
                        });
                    }
                    out.push(Row(vals));
                }
                Ok(out)
            }
            Conn::Postgres(pg) => {
                let mut guard = pg.borrow_mut();
                let pg: &mut Pg = &mut guard;
                let (types, values) = pg_args(args);
                // A read outside a transaction can be tried again on a new connection.
                let read = sql
                    .trim_start()
                    .get(..6)
                    .is_some_and(|w| w.eq_ignore_ascii_case("SELECT"));
                off_runtime(|| {
                    pg.once_more(read, |pg| {
                        let stmt = pg.prepare(sql, &types)?;
                        let rows = pg.client.query(&stmt, &pg_refs(&values))?;
                        rows.iter().map(pg_row).collect()
                    })
                })
            }
        }
    }

    /// Runs a query that returns at most one row.
    pub fn query_opt(&self, sql: &str, args: &[&dyn ToArg]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// Runs a query that returns exactly one row.
    pub fn query_one(&self, sql: &str, args: &[&dyn ToArg]) -> Result<Row, DbError> {
        self.query_opt(sql, args)?.ok_or(DbError::NoRow)
    }

    /// `script`, written in the subset both engines share (SQLite's type names), in this
    /// engine's spelling.
    pub fn ddl(&self, script: &str) -> String {
        match self.dialect() {
            Dialect::Sqlite => script.to_owned(),
            Dialect::Postgres => pg_ddl(script),
        }
    }

    /// The schema version recorded in the database (0: empty): SQLite's `user_version`,
    /// PostgreSQL's `ioc_schema` table (see [`Db::lock_for_migration`]).
    pub fn schema_version(&self) -> Result<u32, DbError> {
        match &self.conn {
            Conn::Sqlite(c) => Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?),
            Conn::Postgres(_) => {
                let made: bool = self
                    .query_one("SELECT to_regclass('ioc_schema') IS NOT NULL", &[])?
                    .get(0)?;
                if !made {
                    return Ok(0);
                }
                self.query_one("SELECT COALESCE(MAX(version), 0) FROM ioc_schema", &[])?
                    .get(0)
            }
        }
    }

    /// Records `version` as the schema version (inside the migration's transaction).
    pub fn set_schema_version(&self, version: u32) -> Result<(), DbError> {
        self.batch(&match self.dialect() {
            Dialect::Sqlite => format!("PRAGMA user_version = {version}"),
            Dialect::Postgres => {
                format!("DELETE FROM ioc_schema; INSERT INTO ioc_schema VALUES ({version})")
            }
        })
    }

    /// Inside a transaction: makes this connection the only one migrating until it ends.
    /// SQLite's `BEGIN IMMEDIATE` already holds the write lock; on PostgreSQL, collectors
    /// sharing a database take an advisory lock, and the first makes the `ioc_schema` table.
    pub fn lock_for_migration(&self) -> Result<(), DbError> {
        if self.dialect() == Dialect::Sqlite {
            return Ok(());
        }
        self.query("SELECT pg_advisory_xact_lock(?1)", &[&PG_MIGRATION_LOCK])?;
        let empty: bool = self
            .query_one("SELECT to_regclass('ioc_schema') IS NULL", &[])?
            .get(0)?;
        if empty {
            self.batch("CREATE TABLE ioc_schema (version BIGINT NOT NULL)")?;
        }
        Ok(())
    }

    /// Begins a transaction that rolls back unless [`Tx::commit`] is called. On SQLite it
    /// takes the write lock at once (`BEGIN IMMEDIATE`), so it never fails half-way on a
    /// lock upgrade.
    pub fn begin(&self) -> Result<Tx<'_>, DbError> {
        match &self.conn {
            Conn::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Conn::Postgres(pg) => {
                self.batch("BEGIN")?;
                pg.borrow_mut().in_tx = true;
            }
        }
        Ok(Tx {
            db: self,
            done: false,
        })
    }

    /// Ends the open transaction with `sql` (`COMMIT` or `ROLLBACK`).
    fn end(&self, sql: &str) -> Result<(), DbError> {
        let r = self.batch(sql);
        if let Conn::Postgres(pg) = &self.conn {
            // Committed, rolled back, or the connection is gone: no transaction either way.
            pg.borrow_mut().in_tx = false;
        }
        r
    }
}

/// An open transaction on a [`Db`]; it derefs to the `Db` for statements.
pub struct Tx<'a> {
    db: &'a Db,
    done: bool,
}

impl Tx<'_> {
    /// Commits.
    pub fn commit(mut self) -> Result<(), DbError> {
        // Marked done only once committed: a failed COMMIT (SQLite: busy) rolls back on drop
        // rather than leaving the transaction open for the next batch to trip over.
        self.db.end("COMMIT")?;
        self.done = true;
        Ok(())
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.db.end("ROLLBACK") {
                tracing::warn!(error = %e, "cannot roll back");
            }
        }
    }
}

/// An argument as PostgreSQL's driver takes it.
enum PgValue<'a> {
    I64(Option<i64>),
    F64(Option<f64>),
    Text(Option<&'a str>),
    Blob(Option<&'a [u8]>),
}

fn pg_refs<'a>(values: &'a [PgValue<'_>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    values
        .iter()
        .map(|v| -> &(dyn postgres::types::ToSql + Sync) {
            match v {
                PgValue::I64(x) => x,
                PgValue::F64(x) => x,
                PgValue::Text(x) => x,
                PgValue::Blob(x) => x,
            }
        })
        .collect()
}

/// The arguments' PostgreSQL types and values.
fn pg_args<'a>(args: &'a [&'a dyn ToArg]) -> (Vec<Type>, Vec<PgValue<'a>>) {
    args.iter()
        .map(|a| match a.to_arg() {
            Arg::I64(x) => (Type::INT8, PgValue::I64(x)),
            Arg::F64(x) => (Type::FLOAT8, PgValue::F64(x)),
            Arg::Text(x) => (Type::TEXT, PgValue::Text(x)),
            Arg::Blob(x) => (Type::BYTEA, PgValue::Blob(x)),
        })
        .unzip()
}

/// Runs `f`, which blocks on the PostgreSQL driver, where that is allowed. The driver runs
/// its own small Tokio runtime, and Tokio refuses to block inside another runtime: from an
/// async context (the API's reads, opening the store at start-up) the call goes to a scoped
/// thread; on the store writer's thread (the ingest path) it runs in place.
pub(crate) fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| match s.spawn(f).join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    } else {
        f()
    }
}

impl Pg {
    /// The prepared statement for `sql` (prepared on first use, with the arguments' types).
    fn prepare(&mut self, sql: &str, types: &[Type]) -> Result<postgres::Statement, DbError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.client.prepare_typed(&pg_sql(sql), types)?;
        // The incident list's SQL varies with its filters: bound the server-side statements
        // (a dropped `Statement` is closed on the server).
        if self.statements.len() >= STATEMENTS_MAX {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }
}

fn pg_row(r: &postgres::Row) -> Result<Row, DbError> {
    let mut vals = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let t = col.type_();
        let v = if *t == Type::VOID {
            None
        } else if *t == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?.map(Val::I64)
        } else if *t == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?.map(|v| Val::I64(v.into()))
        } else if *t == Type::INT2 {
            r.try_get::<_, Option<i16>>(i)?.map(|v| Val::I64(v.into()))
        } else if *t == Type::BOOL {
            r.try_get::<_, Option<bool>>(i)?.map(|v| Val::I64(v.into()))
        } else if *t == Type::FLOAT8 {
            r.try_get::<_, Option<f64>>(i)?.map(Val::F64)
        } else if *t == Type::FLOAT4 {
            r.try_get::<_, Option<f32>>(i)?.map(|v| Val::F64(v.into()))
        } else if *t == Type::BYTEA {
            r.try_get::<_, Option<Vec<u8>>>(i)?.map(Val::Blob)
        } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(t) {
            r.try_get::<_, Option<String>>(i)?.map(Val::Text)
        } else {
            return Err(DbError::Type {
                column: i,
                what: format!("PostgreSQL type {t} is not read by the store (cast it in SQL)"),
            });
        };
        vals.push(v.unwrap_or(Val::Null));
    }
    Ok(Row(vals))
}

/// The store's SQL for PostgreSQL: `?N` → `$N`, `INSERT OR IGNORE` → `ON CONFLICT DO
/// NOTHING`. String literals are left alone.
pub fn pg_sql(sql: &str) -> String {
    let (sql, ignore) = match sql.trim_start().strip_prefix("INSERT OR IGNORE ") {
        Some(rest) => (format!("INSERT {rest}"), true),
        None => (sql.to_owned(), false),
    };
    let mut out = String::with_capacity(sql.len() + 24);
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            _ => out.push(c),
        }
    }
    if ignore {
        out.push_str(" ON CONFLICT DO NOTHING");
    }
    out
}

/// A migration script's DDL for PostgreSQL: SQLite's column types to PostgreSQL's.
pub fn pg_ddl(script: &str) -> String {
    let script = script.replace(
        "INTEGER PRIMARY KEY AUTOINCREMENT",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    );
    let mut out = String::with_capacity(script.len() + 64);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(match word.as_str() {
            "INTEGER" => "BIGINT",
            "REAL" => "DOUBLE PRECISION",
            "BLOB" => "BYTEA",
            w => w,
        });
        word.clear();
    };
    for c in script.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_and_ignores() {
        assert_eq!(
            pg_sql("SELECT a FROM t WHERE b = ?1 AND c = '?' AND d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $12"
        );
        assert_eq!(
            pg_sql("INSERT OR IGNORE INTO t (a) VALUES (?1)"),
            "INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING"
        );
    }

    #[test]
    fn postgres_types() {
        assert_eq!(
            pg_ddl("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER, f REAL,\n b BLOB, integer_x TEXT)"),
            "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT, \
             f DOUBLE PRECISION,\n b BYTEA, integer_x TEXT)"
        );
    }

    #[test]
    fn sqlite_round_trip() {
        let db = Db::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        db.batch("CREATE TABLE t (i INTEGER, f REAL, s TEXT, b BLOB)")
            .unwrap();
        let tx = db.begin().unwrap();
        let n = tx
            .execute(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4), (?5, ?6, ?7, ?8)",
                &[
                    &7i64,
                    &Some(1.5f64),
                    &"x",
                    &vec![0u8, 1],
                    &None::<i64>,
                    &None::<f64>,
                    &None::<String>,
                    &true,
                ],
            )
            .unwrap();
        assert_eq!(n, 2);
        tx.commit().unwrap();
        let rows = db
            .query("SELECT i, f, s, b FROM t ORDER BY rowid", &[])
            .unwrap();
        assert_eq!(rows[0].get::<i64>(0).unwrap(), 7);
        assert_eq!(rows[0].get::<f64>(1).unwrap(), 1.5);
        assert_eq!(rows[0].get::<String>(2).unwrap(), "x");
        assert_eq!(rows[0].get::<Vec<u8>>(3).unwrap(), vec![0, 1]);
        assert_eq!(rows[1].get::<Option<i64>>(0).unwrap(), None);
        assert!(rows[1].get::<bool>(3).unwrap());
        assert!(rows[1]
            .get::<String>(3)
            .unwrap_err()
            .to_string()
            .contains("column 3"));
        // A dropped transaction rolls back.
        {
            let tx = db.begin().unwrap();
            tx.execute("DELETE FROM t", &[]).unwrap();
        }
        assert_eq!(db.query("SELECT i FROM t", &[]).unwrap().len(), 2);
    }
}
