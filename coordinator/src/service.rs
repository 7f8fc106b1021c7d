//! gRPC services: Admin (the CLI) and Worker (the data plane's pull API).

use crate::access::audited;
use crate::cutover::{Direction, SwitchPlan};
use crate::node::Node;
use crate::state::{CdcState, MigrationType, Request, Response, Task, TaskSpec};
use ferry_common::access::{self, Role};
use ferry_common::endpoint::Endpoint;
use ferry_common::mapping::TableMappings;
use ferry_common::position::Position;
use ferry_common::proto::{self as pb, admin_server::Admin, worker_server::Worker};
use ferry_common::settings::TaskSettings;
use ferry_common::stop::CdcStop;
use ferry_common::work::{Errand, WorkResult};
use std::time::Duration;
use tonic::{Request as Req, Response as Resp, Status};
use tracing::Instrument;

pub struct AdminService {
    pub node: Node,
    /// Not laptop mode: callers hold credentials, and a URL may name a
    /// secret only where a named endpoint binds it (see [`AdminService::endpoint`]).
    pub secured: bool,
}

pub struct WorkerService {
    pub node: Node,
}

fn answer(r: Response) -> Result<(), Status> {
    match r {
        Response::Error(e) => Err(Status::failed_precondition(e)),
        Response::Fenced(e) => {
            crate::worker_calls::fenced();
            Err(Status::failed_precondition(e))
        }
        _ => Ok(()),
    }
}

/// Stores a new task through Raft.
async fn create(node: &Node, spec: TaskSpec, cdc_stop: Option<CdcStop>) -> Result<Resp<pb::TaskReply>, Status> {
    let name = spec.name.clone();
    answer(
        node.write(Request::CreateTask {
            spec: Box::new(spec),
            now_ms: ferry_common::now_ms(),
            cdc_stop,
        })
        .await?,
    )?;
    Ok(task_reply(name, "created"))
}

/// Task, token and endpoint names go into keys, file names and SQL comments.
fn check_name(what: &str, name: &str) -> Result<(), Status> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Status::invalid_argument(format!(
            "{what} name '{name}': use letters, digits, '-' and '_'"
        )));
    }
    Ok(())
}

/// A task's new state, with the task named for the audit log.
fn task_reply(name: String, state: &str) -> Resp<pb::TaskReply> {
    let object = name.clone();
    audited(
        Resp::new(pb::TaskReply {
            state: state.into(),
            name,
        }),
        &object,
    )
}

fn summary(t: &Task) -> pb::TaskSummary {
    let tables = t.schema.as_ref().map_or(0, |s| s.tables.len());
    let mut completed = 0;
    let mut rows = 0;
    for i in 0..tables {
        let (state, r, ..) = t.table_progress(i);
        rows += r;
        if state == "Table completed" {
            completed += 1;
        }
    }
    pb::TaskSummary {
        name: t.spec.name.clone(),
        migration_type: t.spec.migration_type.as_str().into(),
        state: t.state.as_str().into(),
        source: t.spec.source.to_string(),
        target: t.spec.target.to_string(),
        tables_total: tables as u64,
        tables_completed: completed,
        rows_loaded: rows,
        error: t.error.clone().unwrap_or_default(),
    }
}

impl AdminService {
    /// `--source` / `--target` of a task (and `ferry endpoint test`): an
    /// endpoint's name, or a URL. Answers the endpoint and the name it came
    /// from.
    ///
    /// Why a URL may not name any secret it likes: the worker reads the
    /// secret and sends it to the URL's server, so whoever creates a task
    /// would choose which password goes where — point a task at a server
    /// one controls and receive another endpoint's password, or the
    /// contents of any file the worker can read. In secured mode a URL
    /// that names a secret must therefore match a named endpoint (created
    /// by an admin) in everything that decides who receives it: server,
    /// user, secret and transport (`Endpoint::uses_secret_of`). A URL that
    /// names none relies on authentication the client binds to the server
    /// itself (trust, certificates, `~/.pgpass`) and is taken as it is. In
    /// laptop mode there is one user, who holds every secret anyway.
    fn endpoint(&self, flag: &str, given: &str) -> Result<(Endpoint, Option<String>), Status> {
        let s = self.node.state.read().expect("state lock");
        if !given.contains("://") {
            return match s.endpoints.get(given) {
                Some(r) => Ok((r.endpoint.clone(), Some(given.to_string()))),
                None => Err(Status::not_found(format!(
                    "{flag}: endpoint {given} not found (`ferry endpoint list`; or give a URL)"
                ))),
            };
        }
        let ep = Endpoint::parse(given).map_err(|e| Status::invalid_argument(format!("{flag}: {e}")))?;
        if self.secured && ep.names_secret() && !s.endpoints.values().any(|r| ep.uses_secret_of(&r.endpoint)) {
            return Err(Status::permission_denied(format!(
                "{flag}: {ep} names a secret that no endpoint binds to this server, user and TLS settings; \
                 name an endpoint an admin created (`ferry endpoint list`), or ask one to create it \
                 (`ferry endpoint create NAME --url URL`)"
            )));
        }
        Ok((ep, None))
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_task(&self, req: Req<pb::CreateTaskRequest>) -> Result<Resp<pb::TaskReply>, Status> {
        let r = req.into_inner();
        check_name("task", &r.name)?;
        let bad = |what: &str, e: String| Status::invalid_argument(format!("{what}: {e}"));
        self.node.read_barrier().await?;
        let (source, source_endpoint) = self.endpoint("--source", &r.source)?;
        let (target, target_endpoint) = self.endpoint("--target", &r.target)?;
        let migration_type = MigrationType::parse(&r.migration_type).ok_or_else(|| {
            Status::invalid_argument(format!(
                "--type '{}': expected full-load, cdc or full-load-and-cdc",
                r.migration_type
            ))
        })?;
        let cdc_start_position = match r.cdc_start_position.trim() {
            "" => None,
            p => Some(
                source
                    .engine
                    .parse_position(p)
                    .map_err(|e| bad("--cdc-start-position", e))?,
            ),
        };
        if !source.engine.has_slots() && !r.slot_name.trim().is_empty() {
            return Err(bad(
                "--slot-name",
                "MySQL and MariaDB have no replication slots; Ferry reads the binlog directly".into(),
            ));
        }
        let slot_name = match r.slot_name.trim() {
            "" => None,
            n if n.len() <= 63
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
            {
                Some(n.to_string())
            }
            n => {
                return Err(bad(
                    "--slot-name",
                    format!("'{n}' is not a replication slot name (lower-case letters, digits, '_'; at most 63)"),
                ))
            }
        };
        let cdc_stop = match r.cdc_stop_position.trim() {
            "" => None,
            p => Some(CdcStop::parse(p, source.engine).map_err(|e| bad("--cdc-stop-position", e))?),
        };
        if migration_type == MigrationType::FullLoad
            && (cdc_start_position.is_some() || slot_name.is_some() || cdc_stop.is_some())
        {
            return Err(Status::invalid_argument(
                "--cdc-start-position, --cdc-stop-position and --slot-name apply to --type cdc or full-load-and-cdc",
            ));
        }
        if cdc_start_position.is_some() && slot_name.is_none() && source.engine.has_slots() {
            return Err(Status::invalid_argument(
                "--cdc-start-position needs --slot-name: a position is only kept by an existing slot",
            ));
        }
        let mappings = if r.table_mappings_json.trim().is_empty() {
            TableMappings::include_all()
        } else {
            TableMappings::parse(&r.table_mappings_json).map_err(|e| Status::invalid_argument(e.to_string()))?
        };
        let settings = if r.settings_json.trim().is_empty() {
            TaskSettings::default()
        } else {
            TaskSettings::parse(&r.settings_json).map_err(|e| Status::invalid_argument(e.to_string()))?
        };
        if let Some(stop) = settings
            .stop_after_load
            .filter(|_| migration_type != MigrationType::FullLoadAndCdc)
        {
            return Err(Status::invalid_argument(format!(
                "FullLoadSettings.{}: only a full-load-and-cdc task stops after its full load",
                stop.setting()
            )));
        }
        if settings.validation.only && migration_type != MigrationType::FullLoad {
            return Err(Status::invalid_argument(
                "ValidationSettings.ValidationOnly: a validation-only task loads nothing and streams nothing; \
                 create it with --type full-load",
            ));
        }
        let transformed = mappings.transforms.first().map(|r| &r.rule_id);
        let transformed = transformed.or(mappings.added.first().map(|r| &r.rule_id));
        let transformed = transformed.or(mappings.keys.first().map(|r| &r.rule_id));
        let transformed = transformed.or(mappings.befores.first().map(|r| &r.rule_id));
        if let Some(id) = transformed.filter(|_| !(r.pre_data_sql.is_empty() && r.post_data_sql.is_empty())) {
            return Err(Status::invalid_argument(format!(
                "table mappings: rule {id}: transformation rules are not applied to --schema-dir files yet; \
                 drop --schema-dir (Ferry then creates the renamed tables itself) or rename in the files"
            )));
        }
        let spec = TaskSpec {
            name: r.name.clone(),
            source,
            target,
            migration_type,
            mappings,
            settings,
            cdc_start_position,
            slot_name,
            schema_files: (!r.pre_data_sql.is_empty() || !r.post_data_sql.is_empty()).then(|| {
                ferry_common::work::SchemaFiles {
                    pre_data: r.pre_data_sql.clone(),
                    post_data: r.post_data_sql.clone(),
                    cutover: r.cutover_sql.clone(),
                }
            }),
            source_endpoint,
            target_endpoint,
        };
        create(&self.node, spec, cdc_stop).await
    }

    async fn start_task(&self, req: Req<pb::TaskName>) -> Result<Resp<pb::TaskReply>, Status> {
        let r = req.into_inner();
        let name = r.name;
        let cdc_stop = match r.cdc_stop_position.trim() {
            "" => None,
            p => {
                self.node.read_barrier().await?;
                let engine = {
                    let s = self.node.state.read().expect("state lock");
                    let t = s
                        .tasks
                        .get(&name)
                        .ok_or_else(|| Status::not_found(format!("task {name} not found")))?;
                    t.spec.source.engine
                };
                Some(
                    CdcStop::parse(p, engine)
                        .map_err(|e| Status::invalid_argument(format!("--cdc-stop-position: {e}")))?,
                )
            }
        };
        answer(
            self.node
                .write(Request::StartTask {
                    name: name.clone(),
                    now_ms: ferry_common::now_ms(),
                    cdc_stop,
                })
                .await?,
        )?;
        Ok(task_reply(name, "running"))
    }

    async fn stop_task(&self, req: Req<pb::TaskName>) -> Result<Resp<pb::TaskReply>, Status> {
        let name = req.into_inner().name;
        answer(self.node.write(Request::StopTask { name: name.clone() }).await?)?;
        Ok(task_reply(name, "stopped"))
    }

    async fn delete_task(&self, req: Req<pb::TaskName>) -> Result<Resp<pb::TaskReply>, Status> {
        let r = req.into_inner();
        let name = r.name;
        let resp = self
            .node
            .write(Request::DeleteTask {
                name: name.clone(),
                force: r.force,
            })
            .await?;
        let state = if resp == Response::Deleted {
            "deleted"
        } else {
            "deleting"
        };
        answer(resp)?;
        Ok(task_reply(name, state))
    }

    async fn request_mark(&self, req: Req<pb::TaskName>) -> Result<Resp<pb::MarkReply>, Status> {
        let name = req.into_inner().name;
        match self.node.write(Request::Mark { name }).await? {
            Response::Mark(mark) => Ok(Resp::new(pb::MarkReply { mark })),
            other => answer(other).map(|_| Resp::new(pb::MarkReply { mark: 0 })),
        }
    }

    async fn switch(&self, req: Req<pb::SwitchRequest>) -> Result<Resp<pb::TaskReply>, Status> {
        let r = req.into_inner();
        let now_ms = ferry_common::now_ms();
        let name = r.name.clone();
        let action = pb::SwitchAction::try_from(r.action)
            .map_err(|_| Status::invalid_argument(format!("switch action {} unknown", r.action)))?;
        let request = match action {
            pb::SwitchAction::Start => Request::StartSwitch {
                name: r.name,
                plan: SwitchPlan {
                    direction: if r.rollback {
                        Direction::Rollback
                    } else {
                        Direction::Cutover
                    },
                    freeze: r.freeze,
                    dry_run: r.dry_run,
                    hook: r.hook,
                },
                now_ms,
            },
            pb::SwitchAction::Resume => Request::ResumeSwitch { name: r.name, now_ms },
            pb::SwitchAction::Abandon => Request::AbandonSwitch { name: r.name, now_ms },
            pb::SwitchAction::HookRan => {
                // Only a switch that waits for its hook takes the report.
                self.node.read_barrier().await?;
                let waiting = {
                    let s = self.node.state.read().expect("state lock");
                    let t = s
                        .tasks
                        .get(&r.name)
                        .ok_or_else(|| Status::not_found(format!("task {} not found", r.name)))?;
                    t.switch
                        .as_ref()
                        .is_some_and(|s| s.at == r.at as usize && s.waiting == crate::cutover::Waiting::Hook)
                };
                if !waiting {
                    return Err(Status::failed_precondition(format!(
                        "task {}: the cutover does not wait for a hook at step {}",
                        r.name, r.at
                    )));
                }
                Request::AdvanceSwitch {
                    name: r.name,
                    at: r.at as usize,
                    note: String::new(),
                    now_ms,
                }
            }
        };
        answer(self.node.write(request).await?)?;
        Ok(task_reply(name, "running"))
    }

    async fn reload_table(&self, req: Req<pb::ReloadTableRequest>) -> Result<Resp<pb::TaskReply>, Status> {
        let r = req.into_inner();
        answer(
            self.node
                .write(Request::ReloadTable {
                    name: r.name.clone(),
                    table: r.table,
                })
                .await?,
        )?;
        Ok(task_reply(r.name, "running"))
    }

    async fn create_token(&self, req: Req<pb::TokenRequest>) -> Result<Resp<pb::TokenReply>, Status> {
        let r = req.into_inner();
        check_name("token", &r.name)?;
        let role = Role::parse(&r.role).map_err(Status::invalid_argument)?;
        if role == Role::Node {
            return Err(Status::invalid_argument(
                "coordinators authenticate to each other with node certificates, not tokens",
            ));
        }
        let token = access::new_token(role);
        answer(
            self.node
                .write(Request::CreateToken {
                    name: r.name.clone(),
                    role,
                    digest: access::token_digest(&token),
                    now_ms: ferry_common::now_ms(),
                })
                .await?,
        )?;
        Ok(audited(
            Resp::new(pb::TokenReply {
                name: r.name.clone(),
                token,
            }),
            &r.name,
        ))
    }

    async fn list_tokens(&self, _req: Req<pb::ListTokensRequest>) -> Result<Resp<pb::TokenList>, Status> {
        self.node.read_barrier().await?;
        let s = self.node.state.read().expect("state lock");
        Ok(Resp::new(pb::TokenList {
            tokens: s
                .tokens
                .iter()
                .map(|(name, t)| pb::TokenInfo {
                    name: name.clone(),
                    role: t.role.to_string(),
                    created_ms: t.created_ms,
                })
                .collect(),
        }))
    }

    async fn revoke_token(&self, req: Req<pb::TokenRequest>) -> Result<Resp<pb::TokenReply>, Status> {
        let name = req.into_inner().name;
        answer(self.node.write(Request::RevokeToken { name: name.clone() }).await?)?;
        Ok(audited(
            Resp::new(pb::TokenReply {
                name: name.clone(),
                token: String::new(),
            }),
            &name,
        ))
    }

    async fn create_endpoint(&self, req: Req<pb::EndpointRequest>) -> Result<Resp<pb::EndpointReply>, Status> {
        let r = req.into_inner();
        check_name("endpoint", &r.name)?;
        let endpoint = Endpoint::parse(&r.url).map_err(|e| Status::invalid_argument(format!("--url: {e}")))?;
        let url = endpoint.url();
        answer(
            self.node
                .write(Request::CreateEndpoint {
                    name: r.name.clone(),
                    endpoint,
                    now_ms: ferry_common::now_ms(),
                })
                .await?,
        )?;
        Ok(audited(
            Resp::new(pb::EndpointReply {
                name: r.name.clone(),
                url,
            }),
            &r.name,
        ))
    }

    async fn delete_endpoint(&self, req: Req<pb::EndpointRequest>) -> Result<Resp<pb::EndpointReply>, Status> {
        let name = req.into_inner().name;
        answer(self.node.write(Request::DeleteEndpoint { name: name.clone() }).await?)?;
        Ok(audited(
            Resp::new(pb::EndpointReply {
                name: name.clone(),
                url: String::new(),
            }),
            &name,
        ))
    }

    async fn list_endpoints(&self, _req: Req<pb::ListEndpointsRequest>) -> Result<Resp<pb::EndpointList>, Status> {
        self.node.read_barrier().await?;
        let s = self.node.state.read().expect("state lock");
        Ok(Resp::new(pb::EndpointList {
            endpoints: s
                .endpoints
                .iter()
                .map(|(name, r)| pb::EndpointReply {
                    name: name.clone(),
                    url: r.endpoint.url(),
                })
                .collect(),
        }))
    }

    async fn resolve_endpoint(&self, req: Req<pb::EndpointRequest>) -> Result<Resp<pb::EndpointReply>, Status> {
        let given = req.into_inner().name;
        self.node.read_barrier().await?;
        let (ep, name) = self.endpoint("endpoint", &given)?;
        let object = name.clone().unwrap_or_else(|| ep.to_string());
        Ok(audited(
            Resp::new(pb::EndpointReply {
                name: name.unwrap_or_default(),
                url: ep.url(),
            }),
            &object,
        ))
    }

    /// Queues the test as an errand and waits for a worker's report: the
    /// worker holds the credentials, the CLI's machine need not.
    async fn test_endpoint(&self, req: Req<pb::TestEndpointRequest>) -> Result<Resp<pb::TestEndpointReply>, Status> {
        let r = req.into_inner();
        self.node.read_barrier().await?;
        let (endpoint, name) = self.endpoint("endpoint", &r.endpoint)?;
        let object = name.unwrap_or_else(|| endpoint.to_string());
        let timeout = Duration::from_secs(if r.timeout_s == 0 { 60 } else { r.timeout_s as u64 });
        let id = match self
            .node
            .write(Request::QueueErrand {
                errand: Errand::TestEndpoint { endpoint },
                now_ms: ferry_common::now_ms(),
            })
            .await?
        {
            Response::Errand(id) => id,
            other => return Err(Status::internal(format!("unexpected errand answer {other:?}"))),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let outcome = loop {
            let e = self.node.state.read().expect("state lock").errands.get(&id).cloned();
            match e {
                Some(e) if e.outcome.is_some() => break e.outcome,
                None => break None,
                Some(_) if tokio::time::Instant::now() >= deadline => break None,
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let _ = self.node.write(Request::DropErrand { id }).await;
        let reply = match outcome {
            Some(Ok(report_json)) => Ok(Resp::new(pb::TestEndpointReply { report_json })),
            Some(Err(e)) => Err(Status::failed_precondition(e)),
            None => Err(Status::unavailable(format!(
                "testing {object}: no worker took the test within {} s (is a worker running and idle? `ferry endpoint test --local` tests from this machine)",
                timeout.as_secs()
            ))),
        };
        reply.map(|r| audited(r, &object))
    }

    async fn join_cluster(&self, req: Req<pb::JoinRequest>) -> Result<Resp<pb::ClusterStatusReply>, Status> {
        let r = req.into_inner();
        let object = format!("node {}", r.node_id);
        let reply = crate::cluster::join(&self.node.raft, r.node_id, &r.addr).await?;
        Ok(audited(Resp::new(reply), &object))
    }

    async fn remove_node(&self, req: Req<pb::JoinRequest>) -> Result<Resp<pb::ClusterStatusReply>, Status> {
        let id = req.into_inner().node_id;
        let reply = crate::cluster::remove(&self.node.raft, id).await?;
        Ok(audited(Resp::new(reply), &format!("node {id}")))
    }

    async fn cluster_status(
        &self,
        _req: Req<pb::ClusterStatusRequest>,
    ) -> Result<Resp<pb::ClusterStatusReply>, Status> {
        Ok(Resp::new(crate::cluster::status(&self.node.raft)))
    }

    async fn capacity(&self, _req: Req<pb::CapacityRequest>) -> Result<Resp<pb::CapacityReply>, Status> {
        let c = self.node.capacity();
        let s = self.node.state.read().expect("state lock");
        let mut busy: std::collections::BTreeMap<u64, u32> = Default::default();
        // Every lease, the snapshot holder's too: stopping its worker would
        // cost the loads reading in its snapshot.
        for l in s.leases.values() {
            *busy.entry(l.worker).or_default() += 1;
        }
        Ok(Resp::new(pb::CapacityReply {
            tasks: c
                .tasks
                .iter()
                .map(|t| pb::TaskCapacity {
                    task: t.task.clone(),
                    min: t.min,
                    max: t.max.unwrap_or(0),
                    desired: t.desired,
                    granted: t.granted,
                    reason: t.reason.clone(),
                })
                .collect(),
            desired: c.desired,
            desired_now: c.desired_now,
            granted: c.granted,
            cooldown_s: c.cooldown_s,
            busy_workers: busy
                .into_iter()
                .map(|(id, assignments)| pb::BusyWorker {
                    name: s
                        .workers
                        .get(&id)
                        .map_or_else(|| format!("worker {id}"), |w| w.name.clone()),
                    assignments,
                })
                .collect(),
        }))
    }

    async fn list_tasks(&self, _req: Req<pb::ListTasksRequest>) -> Result<Resp<pb::ListTasksReply>, Status> {
        self.node.read_barrier().await?;
        let s = self.node.state.read().expect("state lock");
        Ok(Resp::new(pb::ListTasksReply {
            tasks: s.tasks.values().map(summary).collect(),
        }))
    }

    async fn task_status(&self, req: Req<pb::TaskName>) -> Result<Resp<pb::TaskStatusReply>, Status> {
        let name = req.into_inner().name;
        self.node.read_barrier().await?;
        let s = self.node.state.read().expect("state lock");
        let t = s
            .tasks
            .get(&name)
            .ok_or_else(|| Status::not_found(format!("task {name} not found")))?;
        Ok(Resp::new(status_reply(t)))
    }
}

/// What `ferry task status` shows of `t` (also the dashboard's source).
pub fn status_reply(t: &Task) -> pb::TaskStatusReply {
    let tables = t
        .schema
        .as_ref()
        .map(|schema| {
            schema
                .tables
                .iter()
                .enumerate()
                .map(|(i, tb)| {
                    let (state, rows, done, total, error) = t.table_progress(i);
                    let plan = &t.plans[i];
                    let display = tb.display_name();
                    let cdc = t.cdc.as_ref();
                    let counters = cdc.and_then(|c| c.counters.get(&display)).cloned().unwrap_or_default();
                    let cdc_error = cdc.and_then(|c| c.table_errors.get(&display)).cloned();
                    let dropped = cdc.and_then(|c| c.dropped.get(&display)).cloned();
                    let note = dropped
                        .clone()
                        .or_else(|| cdc.and_then(|c| c.insert_only.get(&display)).cloned());
                    // DMS's name for a table the source dropped.
                    let (state, error) = match (cdc_error, dropped) {
                        (_, Some(_)) => ("Table does not exist".to_string(), None),
                        (Some(e), None) => ("Table error".to_string(), Some(e)),
                        (None, None) => (state, error),
                    };
                    pb::TableStatus {
                        schema: tb.schema.clone(),
                        name: tb.name.clone(),
                        state,
                        rows_loaded: rows,
                        rows_estimate: tb.rows_estimate,
                        segments_done: done,
                        segments_total: total,
                        error: error.unwrap_or_default(),
                        load_started_at_ms: plan.load_started_at_ms,
                        load_finished_at_ms: plan.load_finished_at_ms,
                        inserts: counters.inserts,
                        updates: counters.updates,
                        deletes: counters.deletes,
                        truncates: counters.truncates,
                        cdc_note: note.unwrap_or_default(),
                        exceptions: t.table_exceptions(i),
                        validation: Some(validation_status(t, i)),
                        lob_truncations: t.table_truncations(i),
                        apply_conflicts: t.table_conflicts(i),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    pb::TaskStatusReply {
        task: Some(summary(t)),
        phase: t.phase().into(),
        tables,
        created_at_ms: t.created_at_ms,
        started_at_ms: t.started_at_ms,
        finished_at_ms: t.finished_at_ms,
        cdc_json: t.cdc.as_ref().map(|c| cdc_json(t, c)).unwrap_or_default(),
        cutover_json: t.switch.as_ref().map(|s| s.json().to_string()).unwrap_or_default(),
        capacity_json: serde_json::to_string(&crate::capacity::of_task(t)).expect("serializable"),
        full_load_done: t.full_load_done() && t.spec.has_load(),
        failed_objects: t
            .failed_objects
            .iter()
            .map(|(object, error)| pb::FailedObject {
                object: object.clone(),
                error: error.clone(),
            })
            .collect(),
    }
}

/// The CDC section of task status (documented in docs/cli.md).
fn cdc_json(t: &Task, c: &CdcState) -> String {
    let p = &c.progress;
    let streaming = t
        .units
        .iter()
        .any(|u| u.kind == crate::state::UnitKind::Cdc && matches!(u.state, crate::state::UnitState::Running { .. }));
    let log = t.spec.source.engine.source_log();
    let binlog = log == "binlog";
    let (slot, publications) = if t.spec.source.engine.has_slots() {
        (Some(c.names.slot.as_str()), c.names.publications().to_vec())
    } else {
        (None, vec![])
    };
    // A binlog position as its file number and offset.
    let binlog_position = |p: &Position| {
        p.as_binlog()
            .ok()
            .map(|b| serde_json::json!({"file_number": b.file, "offset": b.offset}))
    };
    serde_json::json!({
        "source_log": log,
        "slot": slot,
        "publications": publications,
        "applied_binlog": c.checkpoint.as_ref().filter(|_| binlog).and_then(binlog_position),
        "source_gtid": (!p.source_gtid.is_empty()).then_some(&p.source_gtid),
        "streaming": streaming,
        "slot_consistent_point": c.consistent_point.as_ref().map(|l| l.to_string()),
        "applied_lsn": c.checkpoint.as_ref().map(|l| l.to_string()),
        "latency_source_seconds": p.latency_source_ms as f64 / 1000.0,
        "latency_target_seconds": p.latency_target_ms as f64 / 1000.0,
        "incoming_changes": p.incoming_changes,
        "throughput_rows_per_second": p.throughput_rows_per_s,
        "retained_wal_bytes": p.retained_wal_bytes,
        "marks_requested": c.marks_requested,
        "marks_reached": p.marks_reached,
        // `--cdc-stop-position`, until the stream reaches it.
        "stop_position": t.cdc_stop.as_ref().map(|s| s.to_string()),
        "reported_at_ms": c.progress_at_ms,
        // Tables reloaded because they were altered on the source, with the
        // change (HandleSourceTableAltered), and tables that left the task
        // because the source dropped them (HandleSourceTableDropped).
        "reloaded_for": c.reloaded_for,
        "dropped": c.dropped,
    })
    .to_string()
}

fn aref(a: Option<pb::AssignmentRef>) -> Result<(u64, u64), Status> {
    a.map(|a| (a.id, a.epoch))
        .ok_or_else(|| Status::invalid_argument("missing assignment"))
}

#[tonic::async_trait]
impl Worker for WorkerService {
    async fn register(&self, req: Req<pb::RegisterRequest>) -> Result<Resp<pb::RegisterReply>, Status> {
        let r = req.into_inner();
        match self
            .node
            .write(Request::RegisterWorker {
                name: r.name,
                slots: r.slots.max(1),
                now_ms: ferry_common::now_ms(),
            })
            .await?
        {
            Response::Worker(id) => Ok(Resp::new(pb::RegisterReply {
                worker_id: id,
                lease_ms: self.node.lease_ms,
            })),
            other => Err(Status::internal(format!("unexpected register answer {other:?}"))),
        }
    }

    async fn pull_assignment(&self, req: Req<pb::PullRequest>) -> Result<Resp<pb::PullReply>, Status> {
        let worker = req.into_inner().worker_id;
        let now = ferry_common::now_ms();
        // Errands first: they are short, and someone waits for each.
        if self.node.state.read().expect("state lock").errand_waiting() {
            match self.node.write(Request::TakeErrand { worker }).await? {
                Response::TakenErrand(Some((id, errand))) => {
                    let work_json = serde_json::to_vec(&errand).map_err(|e| Status::internal(e.to_string()))?;
                    return Ok(Resp::new(pb::PullReply {
                        assignment: Some(pb::Assignment {
                            id,
                            epoch: 0,
                            task: String::new(),
                            kind: Errand::KIND.into(),
                            work_json,
                            lease_ms: 0,
                            traceparent: String::new(),
                            control_json: vec![],
                        }),
                    }));
                }
                Response::TakenErrand(None) => {}
                Response::Fenced(e) => return Err(Status::not_found(e)),
                other => return Err(Status::internal(format!("unexpected errand answer {other:?}"))),
            }
        }
        // Skip the Raft write when nothing can be granted (idle polling).
        if !self.node.state.read().expect("state lock").may_grant(now) {
            return Ok(Resp::new(pb::PullReply { assignment: None }));
        }
        // The grant starts the trace of the work it hands out; the worker
        // continues it (see `ferry_common::telemetry`).
        let span = tracing::info_span!(
            "grant",
            worker,
            task = tracing::field::Empty,
            kind = tracing::field::Empty,
            assignment = tracing::field::Empty,
            epoch = tracing::field::Empty
        );
        let r = self
            .node
            .write(Request::Grant {
                worker,
                now_ms: now,
                lease_ms: self.node.lease_ms,
            })
            .instrument(span.clone())
            .await?;
        match r {
            Response::Granted(Some(g)) => {
                span.record("task", g.task.as_str());
                span.record("kind", g.work.kind());
                span.record("assignment", g.id);
                span.record("epoch", g.epoch);
                let traceparent = span.in_scope(ferry_common::telemetry::traceparent);
                let work_json = serde_json::to_vec(&g.work).map_err(|e| Status::internal(e.to_string()))?;
                let control_json = serde_json::to_vec(&g.control).map_err(|e| Status::internal(e.to_string()))?;
                Ok(Resp::new(pb::PullReply {
                    assignment: Some(pb::Assignment {
                        id: g.id,
                        epoch: g.epoch,
                        task: g.task,
                        kind: g.work.kind().into(),
                        work_json,
                        lease_ms: self.node.lease_ms,
                        traceparent,
                        control_json,
                    }),
                }))
            }
            Response::Granted(None) => Ok(Resp::new(pb::PullReply { assignment: None })),
            Response::Fenced(e) => Err(Status::not_found(e)),
            other => Err(Status::internal(format!("unexpected grant answer {other:?}"))),
        }
    }

    async fn heartbeat(&self, req: Req<pb::HeartbeatRequest>) -> Result<Resp<pb::HeartbeatReply>, Status> {
        let r = req.into_inner();
        let resp = self
            .node
            .write(Request::Renew {
                worker: r.worker_id,
                assignments: r.assignments.iter().map(|a| (a.id, a.epoch)).collect(),
                now_ms: ferry_common::now_ms(),
                lease_ms: self.node.lease_ms,
            })
            .await?;
        match resp {
            Response::Renewed {
                revoked,
                unknown_worker,
            } => {
                crate::worker_calls::heartbeat(r.assignments.len().saturating_sub(revoked.len()), revoked.len());
                Ok(Resp::new(pb::HeartbeatReply {
                    revoked,
                    unknown_worker,
                }))
            }
            other => Err(Status::internal(format!("unexpected renew answer {other:?}"))),
        }
    }

    async fn report_progress(&self, req: Req<pb::ProgressRequest>) -> Result<Resp<pb::ProgressReply>, Status> {
        let r = req.into_inner();
        let (assignment, epoch) = aref(r.assignment)?;
        let detail = if r.detail_json.is_empty() {
            None
        } else {
            Some(Box::new(serde_json::from_slice(&r.detail_json).map_err(|e| {
                Status::invalid_argument(format!("assignment {assignment}: progress detail: {e}"))
            })?))
        };
        let resp = self
            .node
            .write(Request::Progress {
                assignment,
                epoch,
                rows: r.rows,
                detail,
                now_ms: ferry_common::now_ms(),
            })
            .await?;
        match resp {
            Response::Progressed { mark_requested } => Ok(Resp::new(pb::ProgressReply { mark_requested })),
            other => answer(other).map(|_| Resp::new(pb::ProgressReply { mark_requested: 0 })),
        }
    }

    async fn mark_requested(&self, req: Req<pb::AssignmentRef>) -> Result<Resp<pb::MarkReply>, Status> {
        let (assignment, epoch) = aref(Some(req.into_inner()))?;
        let s = self.node.state.read().expect("state lock");
        let lease = s.leases.get(&assignment).filter(|l| l.epoch == epoch).ok_or_else(|| {
            Status::failed_precondition(format!("assignment {assignment} (epoch {epoch}) is not held"))
        })?;
        let mark = s
            .tasks
            .get(&lease.task)
            .and_then(|t| t.cdc.as_ref())
            .map_or(0, |c| c.marks_requested);
        Ok(Resp::new(pb::MarkReply { mark }))
    }

    async fn complete(&self, req: Req<pb::CompleteRequest>) -> Result<Resp<pb::Ack>, Status> {
        let r = req.into_inner();
        let (assignment, epoch) = aref(r.assignment)?;
        let result: WorkResult = serde_json::from_slice(&r.result_json)
            .map_err(|e| Status::invalid_argument(format!("assignment {assignment}: result: {e}")))?;
        answer(
            self.node
                .write(Request::Complete {
                    assignment,
                    epoch,
                    result: Box::new(result),
                    now_ms: ferry_common::now_ms(),
                })
                .await?,
        )?;
        Ok(Resp::new(pb::Ack {}))
    }

    async fn fail(&self, req: Req<pb::FailRequest>) -> Result<Resp<pb::Ack>, Status> {
        let r = req.into_inner();
        let (assignment, epoch) = aref(r.assignment)?;
        answer(
            self.node
                .write(Request::Fail {
                    assignment,
                    epoch,
                    error: r.error,
                    retryable: r.retryable,
                    suspend_table: r.suspend_table,
                    now_ms: ferry_common::now_ms(),
                })
                .await?,
        )?;
        Ok(Resp::new(pb::Ack {}))
    }

    async fn release(&self, req: Req<pb::AssignmentRef>) -> Result<Resp<pb::Ack>, Status> {
        let (assignment, epoch) = aref(Some(req.into_inner()))?;
        answer(self.node.write(Request::Release { assignment, epoch }).await?)?;
        Ok(Resp::new(pb::Ack {}))
    }

    async fn complete_errand(&self, req: Req<pb::ErrandResult>) -> Result<Resp<pb::Ack>, Status> {
        let r = req.into_inner();
        let outcome = if r.error.is_empty() {
            Ok(r.answer_json)
        } else {
            Err(r.error)
        };
        answer(
            self.node
                .write(Request::FinishErrand {
                    id: r.id,
                    worker: r.worker_id,
                    outcome,
                })
                .await?,
        )?;
        Ok(Resp::new(pb::Ack {}))
    }
}

/// DMS's per-table validation view.
fn validation_status(t: &Task, table: usize) -> pb::ValidationStatus {
    let v = t.table_validation(table);
    pb::ValidationStatus {
        state: v.state.into(),
        validated_records: v.rows,
        mismatched_records: v.failures,
        pending_segments: v.pending,
        revalidated_segments: v.revalidated,
        failures: v
            .sample
            .into_iter()
            .map(|f| pb::ValidationFailure {
                key: f.key,
                failure_type: f.failure_type.as_str().into(),
                details: f.details,
            })
            .collect(),
    }
}
