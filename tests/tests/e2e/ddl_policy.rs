//! ChangeProcessingDdlHandlingPolicy.HandleSourceTableTruncated: by default
//! a source TRUNCATE empties the target table; set to false the target keeps
//! its rows (the user's choice: the target then holds more than the source)
//! while later changes still flow.
use ferry_tests::*;

async fn ids(c: &tokio_postgres::Client) -> anyhow::Result<Vec<i32>> {
    Ok(c.query("SELECT id FROM public.t ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_truncate_is_applied_unless_the_policy_says_not_to() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute("CREATE TABLE public.t (id integer PRIMARY KEY); INSERT INTO public.t VALUES (1), (2), (3)")
        .await?;
    dst.client("postgres")
        .await?
        .batch_execute("CREATE DATABASE kept")
        .await?;
    // Each task's stream holds a worker slot.
    let f = Ferry::start(2, 5000, &[])?;
    for (task, db, settings) in [
        ("applied", "postgres", "{}"),
        (
            "kept",
            "kept",
            r#"{"ChangeProcessingDdlHandlingPolicy": {"HandleSourceTableTruncated": false}}"#,
        ),
    ] {
        create_typed(
            &f,
            task,
            &src.url("postgres"),
            &dst.url(db),
            "full-load-and-cdc",
            settings,
            &[],
        );
        f.ok(&["task", "start", task]);
        wait_caught_up(&f, task);
    }
    s.batch_execute("TRUNCATE public.t; INSERT INTO public.t VALUES (4)")
        .await?;
    wait_caught_up(&f, "applied");
    wait_caught_up(&f, "kept");
    assert_eq!(ids(&dst.client("postgres").await?).await?, [4]);
    assert_eq!(ids(&dst.client("kept").await?).await?, [1, 2, 3, 4]);
    Ok(())
}
