//! The embedded migrations (`migrations/sqlite/`), applied at start-up.

use sqlx::SqlSafeStr;
use sqlx::SqlitePool;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// Where sqlx records the applied migrations (the same name as in the PostgreSQL store).
const TABLE: &str = "booty_queue_migrations";

/// Applies every migration this version knows and the file lacks. The process holds the file's lock,
/// so nobody migrates at the same time.
pub(super) async fn run(pool: &SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = Migrator::with_migrations(vec![Migration::new(
        1,
        "jobs".into(),
        MigrationType::Simple,
        include_str!("../../../migrations/sqlite/0001_jobs.sql").into_sql_str(),
        false,
    )]);
    migrator.dangerous_set_table_name(TABLE);
    migrator.run(pool).await
}
