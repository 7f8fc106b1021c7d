//! The coordinator's gRPC requests from outside: valid requests of every
//! admin method, mutated as protobuf bytes (see `ferry_common::fuzz`) and
//! sent to a real coordinator process. Each must be answered — with a
//! result or a clean error status, never an internal error — and the
//! coordinator must stay up and never log a panic.
use ferry_common::proto::{self as pb, admin_client::AdminClient};
use ferry_tests::*;
use prost::Message;

fn seeds() -> Vec<Vec<u8>> {
    let create = pb::CreateTaskRequest {
        name: "fz".into(),
        source: "postgres://app@127.0.0.1:5/src?sslmode=require&password_env=PW".into(),
        target: "mysql://root@127.0.0.1:6/dst?ssl-mode=VERIFY_CA&ssl-ca=/ca.pem".into(),
        migration_type: "full-load-and-cdc".into(),
        table_mappings_json: r#"{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"a","object-locator":{"schema-name":"s","table-name":"%"},"rule-action":"include"}]}"#.into(),
        settings_json: r#"{"ValidationSettings":{"EnableValidation":true},"Ferry":{"SegmentTargetBytes":1000}}"#.into(),
        cdc_start_position: "0/16B3748".into(),
        slot_name: "ferry_fz".into(),
        cdc_stop_position: "server_time:2026-12-03T12:00:00".into(),
        pre_data_sql: "CREATE TABLE s.t (id int PRIMARY KEY);".into(),
        post_data_sql: String::new(),
        cutover_sql: String::new(),
    };
    let mut out = vec![];
    // The first byte picks the method; the rest is its request.
    let mut with = |method: u8, body: Vec<u8>| {
        let mut v = vec![method];
        v.extend(body);
        out.push(v);
    };
    with(0, create.encode_to_vec());
    for m in 1..=5 {
        with(
            m,
            pb::TaskName {
                name: "fz".into(),
                force: m == 3,
                cdc_stop_position: if m == 1 { "0/16B3748".into() } else { String::new() },
            }
            .encode_to_vec(),
        );
    }
    for (m, action) in [(6, pb::SwitchAction::Start), (7, pb::SwitchAction::HookRan)] {
        with(
            m,
            pb::SwitchRequest {
                name: "fz".into(),
                action: action.into(),
                freeze: true,
                hook: true,
                at: 3,
                ..Default::default()
            }
            .encode_to_vec(),
        );
    }
    with(
        8,
        pb::ReloadTableRequest {
            name: "fz".into(),
            table: "s.t".into(),
        }
        .encode_to_vec(),
    );
    with(
        9,
        pb::TokenRequest {
            name: "tk".into(),
            role: "viewer".into(),
        }
        .encode_to_vec(),
    );
    let endpoint = pb::EndpointRequest {
        name: "src-db".into(),
        url: "postgres://app@127.0.0.1:5/src?password_env=PW&sslmode=verify-full&sslrootcert=/ca.pem".into(),
    };
    with(10, endpoint.encode_to_vec());
    with(11, endpoint.encode_to_vec());
    with(
        11,
        pb::EndpointRequest {
            name: "mysql://root@127.0.0.1:6/dst?password_file=/pw&plaintext_password=allow".into(),
            url: String::new(),
        }
        .encode_to_vec(),
    );
    with(12, endpoint.encode_to_vec());
    out
}

#[test]
fn fuzz_coordinator_requests() -> anyhow::Result<()> {
    let f = Ferry::start(0, 3000, &[])?;
    let rt = tokio::runtime::Runtime::new()?;
    let mut c = rt.block_on(AdminClient::connect(f.url()))?;
    let mut answered = 0u64;
    let mut internal = vec![];
    let report = ferry_common::fuzz::run("coordinator-grpc", &seeds(), ferry_common::fuzz::budget(), |input| {
        let Some((&method, body)) = input.split_first() else {
            return;
        };
        let res: Result<(), tonic::Status> = rt.block_on(async {
            match method % 13 {
                0 => c
                    .create_task(pb::CreateTaskRequest::decode(body).map_err(skip)?)
                    .await
                    .map(drop),
                1 => c.start_task(pb::TaskName::decode(body).map_err(skip)?).await.map(drop),
                2 => c.stop_task(pb::TaskName::decode(body).map_err(skip)?).await.map(drop),
                3 => c.delete_task(pb::TaskName::decode(body).map_err(skip)?).await.map(drop),
                4 => c.task_status(pb::TaskName::decode(body).map_err(skip)?).await.map(drop),
                5 => c
                    .request_mark(pb::TaskName::decode(body).map_err(skip)?)
                    .await
                    .map(drop),
                6 | 7 => c.switch(pb::SwitchRequest::decode(body).map_err(skip)?).await.map(drop),
                8 => c
                    .reload_table(pb::ReloadTableRequest::decode(body).map_err(skip)?)
                    .await
                    .map(drop),
                9 => c
                    .create_token(pb::TokenRequest::decode(body).map_err(skip)?)
                    .await
                    .map(drop),
                10 => c
                    .create_endpoint(pb::EndpointRequest::decode(body).map_err(skip)?)
                    .await
                    .map(drop),
                11 => c
                    .resolve_endpoint(pb::EndpointRequest::decode(body).map_err(skip)?)
                    .await
                    .map(drop),
                _ => c
                    .delete_endpoint(pb::EndpointRequest::decode(body).map_err(skip)?)
                    .await
                    .map(drop),
            }
        });
        match res {
            Err(s) if s.message() == SKIP => {}
            Err(s) if matches!(s.code(), tonic::Code::Internal | tonic::Code::Unknown) => {
                internal.push(format!("method {method}: {s:?}"));
            }
            _ => answered += 1,
        }
    });
    assert!(report.crashes.is_empty(), "{report}");
    assert!(internal.is_empty(), "internal errors: {internal:?}");
    assert!(answered > 0, "no request got through decoding");
    // Still up, still answering, and nothing panicked inside.
    f.ok(&["task", "list"]);
    let log = f.coordinator.as_ref().unwrap().log_text();
    assert!(!log.contains("panicked"), "the coordinator panicked:\n{log}");
    eprintln!("coordinator-grpc: {answered} requests answered");
    Ok(())
}

const SKIP: &str = "(not decodable: not sent)";

fn skip(_: prost::DecodeError) -> tonic::Status {
    tonic::Status::cancelled(SKIP)
}
