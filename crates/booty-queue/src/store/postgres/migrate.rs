//! The embedded migrations (`migrations/postgres/`), applied at start-up under an advisory lock.

use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::store::sql;

/// Where sqlx records the applied migrations, next to booty's tables (a name of our own, so another
/// sqlx application sharing the schema keeps its own list).
const TABLE: &str = "booty_queue_migrations";

/// Applies every migration this version knows and the database lacks, on `pool`: a pool of one
/// connection that is the migration's alone (sqlx's migrator wants something it can acquire from).
///
/// sqlx's migrator takes a session-level advisory lock (keyed by the database name) before it looks at
/// anything, creates the schema, and releases the lock when done; processes starting together therefore
/// migrate one after the other, and the later ones find nothing to do. The pool is closed at the end
/// whatever happened, which releases the lock even if a migration failed half-way.
pub(super) async fn run(
    pool: PgPool,
    schema: Option<&str>,
) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = Migrator::with_migrations(vec![
        sql::migration(
            1,
            "jobs",
            include_str!("../../../migrations/postgres/0001_jobs.sql"),
        ),
        sql::migration(
            2,
            "generic jobs",
            include_str!("../../../migrations/postgres/0002_generic_jobs.sql"),
        ),
        sql::migration(
            3,
            "bookmarks",
            include_str!("../../../migrations/postgres/0003_bookmarks.sql"),
        ),
    ]);
    migrator.dangerous_set_table_name(TABLE);
    if let Some(schema) = schema {
        // Checked by `PostgresOptions::check`: a plain lowercase identifier, safe to splice.
        migrator.create_schema(schema.to_owned());
    }
    let applied = migrator.run(&pool).await;
    pool.close().await;
    applied
}
