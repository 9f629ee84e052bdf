//! The PostgreSQL store's parts against a real server: `scripts/postgres-test.sh` starts one
//! under `target/postgres` (installing Debian's package if it is missing), and each test gets a
//! database of its own, dropped at the end.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::NoTls;

use super::lease::Leases;
use super::migrate::{self, LATEST};
use super::nodes::Nodes;
use super::{PgError, PgOptions, connect};

/// The server's URL (to its `postgres` database), started once per test process.
fn server() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres-test.sh");
        let out = Command::new("bash")
            .arg(script)
            .output()
            .expect("run scripts/postgres-test.sh");
        assert!(
            out.status.success(),
            "scripts/postgres-test.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("a URL")
            .trim()
            .to_owned()
    })
}

/// A fresh database of its own for one test; dropped when the value is.
struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    async fn new() -> TestDb {
        let name = format!("wp_test_{}", uuid::Uuid::new_v4().simple());
        admin(&format!("CREATE DATABASE {name}")).await;
        let url = server().replacen("/postgres", &format!("/{name}"), 1);
        TestDb { name, url }
    }

    fn options(&self) -> PgOptions {
        PgOptions {
            url: self.url.clone(),
            pool_size: 8,
            statement_timeout: Duration::from_secs(10),
        }
    }

    async fn pool(&self) -> Pool {
        connect(&self.options()).await.expect("connect and migrate")
    }

    async fn drop_now(self) {
        admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .await;
    }
}

/// Runs one statement on the server's `postgres` database.
async fn admin(sql: &str) {
    let (db, connection) = tokio_postgres::connect(server(), NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(connection);
    db.batch_execute(sql).await.expect(sql);
}

fn target(db: &TestDb) -> String {
    super::describe(&db.url.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_applied_once_by_whichever_node_starts_first() {
    let db = TestDb::new().await;
    // Four nodes start at the same moment on an empty database.
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let options = db.options();
            tokio::spawn(async move { connect(&options).await.map(|_| ()) })
        })
        .collect();
    for start in starts {
        start.await.unwrap().expect("every node starts");
    }
    let pool = db.pool().await;
    assert_eq!(migrate::version(&pool, &target(&db)).await.unwrap(), LATEST);
    let client = pool.get().await.unwrap();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM watchpost_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, i64::from(LATEST), "each migration recorded once");
    assert_eq!(
        migrate::apply(&pool, &target(&db)).await.unwrap(),
        Vec::<i32>::new(),
        "nothing left to apply"
    );
    drop(client);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_a_newer_watchpost_is_refused() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    pool.get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO watchpost_schema (version, applied_at) VALUES ($1, now())",
            &[&(LATEST + 1)],
        )
        .await
        .unwrap();
    let err = connect(&db.options()).await.expect_err("refused");
    assert!(
        matches!(err, PgError::Newer { found, known } if found == LATEST + 1 && known == LATEST),
        "{err}"
    );
    assert!(err.to_string().contains("run the newer release"), "{err}");
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_that_does_not_parse_or_answer_says_so_without_the_password() {
    let bad = PgOptions {
        url: "postgres://watchpost:hunter2@127.0.0.1:1/nowhere".to_owned(),
        pool_size: 1,
        statement_timeout: Duration::from_secs(1),
    };
    let err = connect(&bad).await.expect_err("nothing listens on port 1");
    let said = err.to_string();
    assert!(said.contains("127.0.0.1:1/nowhere"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
    let garbled = PgOptions {
        url: "postgres://[::1".to_owned(),
        ..bad
    };
    let err = connect(&garbled).await.expect_err("does not parse");
    assert!(matches!(err, PgError::BadUrl(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_holds_a_lease_until_it_lapses_and_another_takes_it_over() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let (a, b) = (
        Leases::new(pool.clone(), &target(&db), "node-a"),
        Leases::new(pool.clone(), &target(&db), "node-b"),
    );
    let ttl = Duration::from_millis(600);

    let first = a
        .acquire("channel:oncall", ttl)
        .await
        .unwrap()
        .expect("free");
    assert_eq!(b.acquire("channel:oncall", ttl).await.unwrap(), None);
    assert_eq!(
        b.holder("channel:oncall").await.unwrap().as_deref(),
        Some("node-a")
    );
    let renewed = a
        .acquire("channel:oncall", ttl)
        .await
        .unwrap()
        .expect("renewed");
    assert!(
        renewed.expires_at > first.expires_at,
        "a renewal extends it"
    );
    assert_eq!(
        renewed.acquired_at, first.acquired_at,
        "and keeps who took it when"
    );
    assert!(
        b.acquire("channel:other", ttl).await.unwrap().is_some(),
        "leases are per piece of work"
    );

    // node-a stops renewing (it died): once the lease lapses, node-b takes it over.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(b.holder("channel:oncall").await.unwrap(), None, "lapsed");
    let taken = b
        .acquire("channel:oncall", ttl)
        .await
        .unwrap()
        .expect("taken over");
    assert!(taken.acquired_at > first.acquired_at);
    assert_eq!(
        a.acquire("channel:oncall", ttl).await.unwrap(),
        None,
        "node-a's late renewal fails: it must stop the work"
    );

    // A clean stop hands it over at once.
    assert!(b.release("channel:oncall").await.unwrap());
    assert!(!b.release("channel:oncall").await.unwrap(), "released once");
    assert!(a.acquire("channel:oncall", ttl).await.unwrap().is_some());
    drop(pool);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_nodes_racing_for_a_lapsed_lease_exactly_one_wins() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let t = target(&db);
    let ttl = Duration::from_secs(30);
    for round in 0..5 {
        let name = format!("probe:db-{round}");
        // A lease that lapsed: held by a node that died.
        Leases::new(pool.clone(), &t, "dead")
            .acquire(&name, Duration::ZERO)
            .await
            .unwrap()
            .expect("free");
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let leases = Leases::new(pool.clone(), &t, &format!("node-{i}"));
                let (name, barrier) = (name.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    leases.acquire(&name, ttl).await.unwrap().is_some()
                })
            })
            .collect();
        let mut winners = 0;
        for racer in racers {
            winners += usize::from(racer.await.unwrap());
        }
        assert_eq!(winners, 1, "round {round}");
    }
    drop(pool);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_is_watching_while_any_other_node_is() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let t = target(&db);
    let (a, b) = (
        Nodes::new(pool.clone(), &t, "node-a"),
        Nodes::new(pool.clone(), &t, "node-b"),
    );
    assert_eq!(a.others_last_alive().await.unwrap(), None, "alone");
    let a_mark = a.mark_alive().await.unwrap();
    assert_eq!(
        a.others_last_alive().await.unwrap(),
        None,
        "its own mark does not count"
    );
    let b_mark = b.mark_alive().await.unwrap();
    assert_eq!(a.others_last_alive().await.unwrap(), Some(b_mark));
    assert_eq!(b.others_last_alive().await.unwrap(), Some(a_mark));
    let again = a.mark_alive().await.unwrap();
    assert!(again > a_mark);
    assert_eq!(
        b.others_last_alive().await.unwrap(),
        Some(again),
        "the newest mark"
    );
    assert_eq!(
        a.forget_silent(1).await.unwrap(),
        0,
        "nobody silent for a day"
    );
    drop(pool);
    db.drop_now().await;
}
