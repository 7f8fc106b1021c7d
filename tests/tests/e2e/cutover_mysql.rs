//! The same cutover for MariaDB → PostgreSQL: an application account writes
//! to MariaDB while Ferry replicates; `ferry cutover --freeze-source` sets
//! the server read-only (the application's writes are refused), drains,
//! moves the target's identities past the source, and starts the reverse
//! stream; writes on PostgreSQL reach MariaDB; `ferry rollback` returns to
//! MariaDB with nothing lost and AUTO_INCREMENT past the target's keys.
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;

async fn app_client(my: &MariaDbServer) -> anyhow::Result<mysql_async::Conn> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(my.port)
        .user(Some("app"))
        .pass(Some("app"))
        .db_name(Some("shop"));
    Ok(mysql_async::Conn::new(opts).await?)
}

/// Both sides' orders as text rows, by id.
async fn orders(m: &mut mysql_async::Conn, p: &tokio_postgres::Client) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let a: Vec<(i64, String, String)> = m
        .query("SELECT id, note, CAST(amount AS CHAR) FROM shop.orders ORDER BY id")
        .await?;
    let b: Vec<String> = p
        .query(
            "SELECT id::text || '|' || note || '|' || amount::text FROM shop.orders ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok((a.into_iter().map(|(i, n, x)| format!("{i}|{n}|{x}")).collect(), b))
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_to_postgres_cutover_and_rollback() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut root = my.client("mysql").await?;
    root.query_drop(
        "CREATE DATABASE shop; CREATE USER app IDENTIFIED BY 'app'; GRANT SELECT, INSERT, UPDATE, DELETE ON shop.* TO app",
    )
    .await?;
    root.query_drop(
        "CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(100) NOT NULL, amount DECIMAL(10,2) NOT NULL)",
    )
    .await?;
    let mut app = app_client(&my).await?;
    for i in 0..100 {
        app.query_drop(format!(
            "INSERT INTO orders (note, amount) VALUES ('before {i}', {i}.25)"
        ))
        .await?;
    }
    let f = Ferry::start(2, 3000, &[])?;
    create_typed(
        &f,
        "mp",
        &my.url("shop"),
        &pg.url("postgres"),
        "full-load-and-cdc",
        r#"{"ValidationSettings": {"EnableValidation": true}}"#,
        &[],
    );
    f.ok(&["task", "start", "mp"]);
    wait_caught_up(&f, "mp");

    // The application keeps writing while the cutover runs.
    let writer = tokio::spawn({
        let mut app = app_client(&my).await?;
        async move {
            let mut i = 0u32;
            loop {
                let r = app
                    .query_drop(format!(
                        "INSERT INTO orders (note, amount) VALUES ('during {i}', 1.50); UPDATE orders SET amount = amount + 1 WHERE id = {}",
                        1 + i % 100
                    ))
                    .await;
                if r.is_err() {
                    return i;
                }
                i += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (ok, out, err) = f.ferry(&["cutover", "mp", "--freeze-source"]);
    assert!(ok, "cutover failed: {out}{err}\nstatus: {:?}", f.status("mp"));
    println!("{out}");
    let window = freeze_window(&out);
    assert!(window < 5.0, "write-freeze window {window} s: {out}");
    assert!(out.contains("4. changed ranges validated"), "{out}");
    // The writer was stopped by the freeze (its statement was refused).
    let written = tokio::time::timeout(std::time::Duration::from_secs(10), writer).await??;
    assert!(written > 0);
    let refused = app
        .query_drop("INSERT INTO orders (note, amount) VALUES ('after', 0)")
        .await
        .expect_err("a frozen source must refuse the application's writes");
    assert!(
        refused.to_string().contains("read-only") || refused.to_string().contains("1290"),
        "{refused}"
    );

    let p = pg.client("postgres").await?;
    let (a, b) = orders(&mut root, &p).await?;
    assert_eq!(a, b, "the target must hold exactly the source's rows");

    // The application moves to PostgreSQL; its writes reach MariaDB.
    let id: i32 = p
        .query_one(
            "INSERT INTO shop.orders (note, amount) VALUES ('on the target', 9.99) RETURNING id",
            &[],
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .get(0);
    let source_max = a.len() as i32; // ids are dense, from 1
    assert!(id > source_max, "target id {id} not past the source's {source_max}");
    p.batch_execute(
        "UPDATE shop.orders SET note = 'changed on the target' WHERE id = 5; DELETE FROM shop.orders WHERE id = 6",
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    let (ok, out, err) = f.ferry(&["rollback", "mp"]);
    assert!(ok, "rollback failed: {out}{err}\nstatus: {:?}", f.status("mp-reverse"));
    println!("{out}");
    let (a, b) = orders(&mut root, &p).await?;
    assert_eq!(a, b, "the source must hold exactly the target's rows after rollback");
    // MariaDB takes the application's writes again, past the target's keys.
    let mut app = app_client(&my).await?;
    app.query_drop("INSERT INTO orders (note, amount) VALUES ('back', 1)")
        .await?;
    let back: Option<i64> = app.query_first("SELECT LAST_INSERT_ID()").await?;
    assert!(back.unwrap() > id as i64, "{back:?} not past {id}");
    Ok(())
}
