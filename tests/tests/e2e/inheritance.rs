//! Shapes the Sakila sample database (bench/sakila.sh) brought in, which
//! nothing written here had: tables with inheritance children (not
//! partitions) and keys drawn from sequences no column owns.
use ferry_tests::*;

const SCHEMA: &str = "
CREATE SEQUENCE shop.payment_id_seq;
CREATE TABLE shop.payment (id int PRIMARY KEY DEFAULT nextval('shop.payment_id_seq'), amount numeric(5,2), at date NOT NULL);
-- Children by INHERITS: no key of their own (INHERITS copies none).
CREATE TABLE shop.payment_2007 (CHECK (at < '2008-01-01')) INHERITS (shop.payment);
CREATE TABLE shop.payment_2008 (CHECK (at >= '2008-01-01')) INHERITS (shop.payment);
ALTER TABLE shop.payment_2008 REPLICA IDENTITY FULL;
INSERT INTO shop.payment (amount, at) SELECT g, '2006-06-01' FROM generate_series(1, 50) g;
INSERT INTO shop.payment_2007 (id, amount, at) SELECT 1000 + g, g, '2007-06-01' FROM generate_series(1, 50) g;
INSERT INTO shop.payment_2008 (id, amount, at) SELECT 2000 + g, g, '2008-06-01' FROM generate_series(1, 50) g;
";

/// The parent is loaded without its children's rows (each child is a table
/// of the task), the sequence its default calls exists on the target, and
/// changes flow for all three — while the
/// source keeps accepting UPDATEs of the keyless child (a publication that
/// took the children in with the parent would make the source refuse them).
#[tokio::test(flavor = "multi_thread")]
async fn inheritance_children_and_unowned_sequences_migrate_exactly() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute("CREATE SCHEMA shop").await?;
    s.batch_execute(SCHEMA).await?;

    let f = Ferry::start(1, 3000, &[])?;
    create_typed(
        &f,
        "inh",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "inh"]);
    wait_caught_up(&f, "inh");

    // The source's applications keep writing, keyless child included.
    s.batch_execute(
        "INSERT INTO shop.payment (amount, at) VALUES (7, '2006-07-01');
         INSERT INTO shop.payment_2007 (id, amount, at) VALUES (1100, 7, '2007-07-01');
         UPDATE shop.payment_2007 SET amount = amount + 1 WHERE id = 1001;
         UPDATE shop.payment_2008 SET amount = amount + 1 WHERE id = 2001;
         DELETE FROM shop.payment_2008 WHERE id = 2002;
         UPDATE shop.payment SET amount = 0 WHERE id = 3;",
    )
    .await?;
    wait_caught_up(&f, "inh");

    let d = dst.client("postgres").await?;
    for t in ["shop.payment", "shop.payment_2007", "shop.payment_2008"] {
        let only = format!("ONLY {t}");
        let (a, b) = (table_digest(&s, &only).await?, table_digest(&d, &only).await?);
        // The keyless child's update is not captured (no replica identity):
        // only its insert must match; the others match whole.
        if t == "shop.payment_2007" {
            let ids = "SELECT id FROM ONLY shop.payment_2007 ORDER BY id";
            let (x, y) = (s.query(ids, &[]).await?, d.query(ids, &[]).await?);
            assert_eq!(x.len(), y.len(), "{t}: row counts differ");
        } else {
            assert_eq!(a, b, "{t} differs");
        }
    }
    assert_eq!(table_digest(&d, "ONLY shop.payment").await?.0, 51);
    // The unowned sequence exists on the target (the table's default calls
    // it) and is not owned there either: another table could call it.
    let owned: i64 = d
        .query_one(
            "SELECT count(*) FROM pg_depend WHERE objid = 'shop.payment_id_seq'::regclass AND deptype = 'a'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(owned, 0, "the target owns a sequence the source does not");
    Ok(())
}
