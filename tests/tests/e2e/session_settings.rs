//! Values keep their meaning between servers whose session defaults differ.
//! The source rounds float output (`extra_float_digits = 0`) and writes
//! dates day-first; the target's `lc_monetary` is de_DE (a money literal in
//! the C form, `$1,234.56`, does not parse there), its intervals are
//! `sql_standard` and its dates day-first. Every row, loaded and changed
//! under CDC, must arrive exact — compared under fixed settings.
use ferry_tests::compare::pg_rows;
use ferry_tests::*;
use std::process::Command;

/// Settings both servers' sessions start with unless a client says
/// otherwise.
const SKEWED: &str = "-c DateStyle=SQL,DMY -c IntervalStyle=sql_standard -c extra_float_digits=0";

/// The rows, read in one fixed form.
async fn rows(server: &PgServer) -> anyhow::Result<ferry_tests::compare::TextRows> {
    let c = server.client("postgres").await?;
    c.batch_execute(
        "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; SET lc_monetary = 'C'",
    )
    .await?;
    pg_rows(
        &c,
        "SELECT id::text, m::numeric::text, iv::text, d::text, ts::text, f::text FROM public.v ORDER BY id",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn values_survive_servers_with_other_locales_and_styles() -> anyhow::Result<()> {
    // A de_DE locale of the test's own: the machine need not have one.
    let locales = tempfile::Builder::new().prefix("ferry-locales-").tempdir()?;
    let st = Command::new("localedef")
        .args(["-i", "de_DE", "-f", "UTF-8"])
        .arg(locales.path().join("de_DE.UTF-8"))
        .status()?;
    anyhow::ensure!(st.success(), "localedef could not build de_DE.UTF-8 (package locales)");
    Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(locales.path())
        .status()?;
    let locpath = locales.path().to_str().unwrap().to_string();
    let src = PgServer::start_with(SKEWED)?;
    let dst = PgServer::start_with_env(
        &format!("{SKEWED} -c lc_monetary=de_DE.UTF-8"),
        &[("LOCPATH", &locpath)],
    )?;
    let d = dst.client("postgres").await?;
    let shown = d.query_one("SHOW lc_monetary", &[]).await?.get::<_, String>(0);
    assert_eq!(shown, "de_DE.UTF-8", "the target runs under the generated locale");

    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.v (id int PRIMARY KEY, m money, iv interval, d date, ts timestamp, f float8);
         INSERT INTO public.v VALUES
           (1, 1234.56, '-1 day +2 hours', '2026-04-12', '2026-04-12 13:14:15.5', 0.1::float8 + 0.2),
           (2, -0.01, '1 year -3 days 04:05:06', '1999-12-01', '1999-01-02 03:04:05', 1e-300);",
    )
    .await?;
    let f = Ferry::start(2, 5000, &[])?;
    create_typed(
        &f,
        "skew",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "skew"]);
    wait_caught_up(&f, "skew");
    assert_eq!(rows(&dst).await?, rows(&src).await?, "after the full load");

    s.batch_execute(
        "INSERT INTO public.v VALUES
           (3, 98765.43, '-2 hours -3 minutes', '2026-01-02', '2026-01-02 00:00:00.000001', 2.0 / 3),
           (4, 0, '-1 years +1 month', '2024-02-29', '2024-02-29 23:59:59', -1.7976931348623157e308);
         UPDATE public.v SET m = m + 1000.01::numeric::money, iv = iv * 2, d = d + 1, f = f * 3 WHERE id = 1;",
    )
    .await?;
    wait_caught_up(&f, "skew");
    let st = f.status("skew").unwrap();
    assert_eq!(table_status(&st, "v")["exceptions"], 0, "{st}");
    assert_eq!(rows(&dst).await?, rows(&src).await?, "after CDC");
    assert_eq!(rows(&dst).await?.len(), 4);
    Ok(())
}
