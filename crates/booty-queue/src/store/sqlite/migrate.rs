//! The embedded migrations (`migrations/sqlite/`), applied at start-up.

use sqlx::SqlitePool;
use sqlx::migrate::Migrator;

use crate::store::sql;

/// Where sqlx records the applied migrations (the same name as in the PostgreSQL store).
const TABLE: &str = "booty_queue_migrations";

/// Applies every migration this version knows and the file lacks. The process holds the file's lock,
/// so nobody migrates at the same time.
pub(super) async fn run(pool: &SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = Migrator::with_migrations(vec![
        sql::migration(
            1,
            "jobs",
            include_str!("../../../migrations/sqlite/0001_jobs.sql"),
        ),
        sql::migration(
            2,
            "cheaper inserts",
            include_str!("../../../migrations/sqlite/0002_cheaper_inserts.sql"),
        ),
        sql::migration(
            3,
            "generic jobs",
            include_str!("../../../migrations/sqlite/0003_generic_jobs.sql"),
        ),
        sql::migration(
            4,
            "bookmarks",
            include_str!("../../../migrations/sqlite/0004_bookmarks.sql"),
        ),
        sql::migration(
            5,
            "packed payloads",
            include_str!("../../../migrations/sqlite/0005_packed_payloads.sql"),
        ),
    ]);
    migrator.dangerous_set_table_name(TABLE);
    migrator.run(pool).await
}
