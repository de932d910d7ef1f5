//! The monitor on the SQLite pool: the same statistics as on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use kamiyo_db::monitor::QuerySort;
use kamiyo_db::{Database, DbConfig, Pool};
use rusqlite::types::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_statements_and_acquisitions_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(DbConfig::for_url(format!(
        "sqlite://{}",
        dir.path().join("m.db").display()
    )))
    .await
    .unwrap();
    let Pool::Sqlite(pool) = db.primary().clone() else {
        panic!("expected SQLite")
    };
    let conn = pool.acquire().await.unwrap();
    conn.run(|c| c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"))
        .await
        .unwrap();
    for i in 0..3 {
        conn.execute(
            "INSERT INTO t (id, name) VALUES (?1, ?2)",
            vec![Value::Integer(i), Value::Text(format!("n{i}"))],
        )
        .await
        .unwrap();
    }
    let names = conn
        .query("SELECT name FROM t ORDER BY id", Vec::new(), |row| {
            row.get::<_, String>(0)
        })
        .await
        .unwrap();
    assert_eq!(names, vec!["n0", "n1", "n2"]);
    let duplicate = conn
        .execute(
            "INSERT INTO t (id, name) VALUES (?1, ?2)",
            vec![Value::Integer(0), Value::Null],
        )
        .await;
    assert!(duplicate.is_err());
    drop(conn);

    let statements = pool.monitor().statements(QuerySort::Calls, 10);
    let insert = statements.iter().find(|s| s.summary == "INSERT t").unwrap();
    assert_eq!((insert.calls, insert.errors, insert.rows), (4, 1, 3));
    let select = statements.iter().find(|s| s.summary == "SELECT t").unwrap();
    assert_eq!((select.calls, select.rows), (1, 3));
    let report = pool.monitor().report(pool.state());
    assert_eq!(report.system, "sqlite");
    assert_eq!(report.acquisitions.total, 1);
    assert_eq!(report.acquisitions.use_time.count, 1);
}
