//! Fuzzing the parsers of outside input that live in ferry-common: endpoint
//! URLs, table mappings, task settings, source positions, value texts and
//! column types (see `ferry_common::fuzz`). Each must reject bad input with
//! an error, never panic.
use ferry_common::endpoint::{redact, Endpoint, Engine};
use ferry_common::fuzz::{budget, run_text};
use ferry_common::mapping::{matches, TableMappings};
use ferry_common::settings::TaskSettings;

#[test]
fn fuzz_endpoint_urls() {
    let seeds = [
        "postgres://app@db.example:6543/shop?password_env=SRC_PW&sslmode=verify-full&sslrootcert=/etc/ca.pem",
        "mysql://root@127.0.0.1:3306/shop?ssl-mode=VERIFY_CA&ssl-ca=/ca.pem&ssl-cert=/c.pem&ssl-key=/k.pem",
        "mariadb://app@[::1]:3307/shop?password_file=/run/secrets/pw",
        "postgresql://u@h/d?application_name=x&connect_timeout=5",
        "postgres://us%40er:pa%3Ass@host/db",
        "postgres://app@db/shop?password_env=PW&plaintext_password=allow&application_name=a%26b",
    ];
    let r = run_text("endpoint-url", &seeds, budget(), |s| {
        let _ = redact(s);
        if let Ok(e) = Endpoint::parse(s) {
            // What parses must print and parse again the same.
            let again = Endpoint::parse(&e.to_string()).expect("a printed endpoint parses");
            assert_eq!(again.to_string(), e.to_string());
            // And the full URL (secret reference, TLS keys) to the same endpoint.
            assert_eq!(Endpoint::parse(&e.url()).expect("an endpoint's URL parses"), e);
        }
    });
    assert!(r.crashes.is_empty(), "{r}");
}

#[test]
fn fuzz_table_mappings() {
    let seeds = [
        r#"{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"a","object-locator":{"schema-name":"shop","table-name":"%"},"rule-action":"include"},{"rule-type":"selection","rule-id":"2","rule-name":"b","object-locator":{"schema-name":"shop","table-name":"tmp_%"},"rule-action":"exclude"}]}"#,
        r#"{"rules":[{"rule-type":"table-settings","rule-id":"3","rule-name":"c","object-locator":{"schema-name":"s","table-name":"t"},"parallel-load":{"type":"ranges","columns":["id"],"boundaries":[["100"],["200"]]}}]}"#,
        r#"{"rules":[{"rule-type":"transformation","rule-id":"7","rule-name":"x","rule-action":"rename","rule-target":"schema","object-locator":{"schema-name":"a"},"value":"b"}]}"#,
    ];
    let r = run_text("table-mappings", &seeds, budget(), |s| {
        if let Ok(m) = TableMappings::parse(s) {
            let _ = m.selects("shop", "orders");
            let _ = m.ranges_for("s", "t");
        }
        let _ = matches(s, "shop_orders");
    });
    assert!(r.crashes.is_empty(), "{r}");
}

#[test]
fn fuzz_task_settings() {
    let seeds = [
        r#"{"FullLoadSettings":{"TargetTablePrepMode":"TRUNCATE_BEFORE_LOAD","MaxFullLoadSubTasks":4},"ValidationSettings":{"EnableValidation":true,"PartitionSize":500},"ChangeProcessingDdlHandlingPolicy":{"HandleSourceTableAltered":true},"TargetMetadata":{"ParallelApplyThreads":4},"Ferry":{"SegmentTargetBytes":1000,"MaxSegmentsPerTable":8,"SplitTablesLargerThan":0,"RevalidateDelaySeconds":1}}"#,
        "{}",
        "[]",
    ];
    let r = run_text("task-settings", &seeds, budget(), |s| {
        let _ = TaskSettings::parse(s);
    });
    assert!(r.crashes.is_empty(), "{r}");
}

#[test]
fn fuzz_positions_values_and_types() {
    let seeds = [
        "0/16B3748",
        "mysql-bin.000003:4",
        "0-1-42",
        "2024-02-29",
        "23:59:59.999999",
        "2024-02-29 12:34:56.5",
        "-838:59:59",
        "decimal(10,2) unsigned",
        "enum('a','b''c')",
        "set('x','y')",
        "varchar(255) character set utf8mb4",
        "timestamp(6) with time zone",
        "numeric(1000,-5)[]",
    ];
    let r = run_text("positions-values-types", &seeds, budget(), |s| {
        for engine in [Engine::Postgres, Engine::Mysql] {
            let _ = engine.parse_position(s);
        }
        let _ = ferry_common::value::parse_date(s);
        let _ = ferry_common::value::parse_time_of_day(s);
        let _ = ferry_common::value::parse_datetime(s);
        let _ = ferry_common::value::parse_duration(s);
        let _ = ferry_common::typemap::MysqlType::parse(s);
        for (from, to) in [
            (Engine::Postgres, Engine::Mysql),
            (Engine::Mysql, Engine::Postgres),
            (Engine::Mysql, Engine::Mysql),
        ] {
            let _ = ferry_common::typemap::convert_type(from, to, s);
        }
    });
    assert!(r.crashes.is_empty(), "{r}");
}
