//! The state machine on its own, deterministic and without Raft: the unit
//! lifecycle, leases and epoch fencing, and tables that come and go.
use super::*;
use ferry_common::endpoint::{Endpoint, Engine};
use ferry_common::position::{Lsn, Position};
use ferry_common::schema::{Column, PrimaryKey};
use ferry_common::work::{CdcProgress, ProgressDetail};

const LEASE_MS: u64 = 1_000;

fn spec(name: &str, migration_type: MigrationType) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        source: Endpoint::parse("postgres://u@src:5432/db").unwrap(),
        target: Endpoint::parse("postgres://u@dst:5432/db").unwrap(),
        migration_type,
        mappings: TableMappings::include_all(),
        settings: TaskSettings::default(),
        cdc_start_position: None,
        slot_name: None,
        schema_files: None,
        source_endpoint: None,
        target_endpoint: None,
    }
}

fn table(name: &str) -> TableSchema {
    let mut t = TableSchema::bare(
        Engine::Postgres,
        "public",
        name,
        vec![Column::plain("id", "integer"), Column::plain("v", "text")],
    );
    t.primary_key = Some(PrimaryKey {
        name: format!("{name}_pkey"),
        columns: vec!["id".into()],
    });
    t
}

struct Machine {
    s: State,
    now: u64,
    worker: u64,
}

impl Machine {
    fn new() -> Machine {
        let mut m = Machine {
            s: State::default(),
            now: 1_000,
            worker: 0,
        };
        let Response::Worker(w) = m.apply(Request::RegisterWorker {
            name: "w".into(),
            slots: 4,
            now_ms: m.now,
        }) else {
            panic!("no worker id")
        };
        m.worker = w;
        m
    }

    fn apply(&mut self, req: Request) -> Response {
        self.s.apply(req, &mut Dirty::default())
    }

    fn create(&mut self, spec: TaskSpec) {
        let now_ms = self.now;
        let name = spec.name.clone();
        assert_eq!(
            self.apply(Request::CreateTask {
                spec: Box::new(spec),
                now_ms,
                cdc_stop: None,
            }),
            Response::Ok
        );
        assert_eq!(
            self.apply(Request::StartTask {
                name,
                now_ms,
                cdc_stop: None
            }),
            Response::Ok
        );
    }

    fn grant(&mut self) -> Option<GrantedWork> {
        match self.apply(Request::Grant {
            worker: self.worker,
            now_ms: self.now,
            lease_ms: LEASE_MS,
        }) {
            Response::Granted(g) => g,
            r => panic!("grant answered {r:?}"),
        }
    }

    fn complete(&mut self, g: &GrantedWork, result: WorkResult) -> Response {
        self.apply(Request::Complete {
            assignment: g.id,
            epoch: g.epoch,
            result: Box::new(result),
            now_ms: self.now,
        })
    }

    /// Grants and completes work until none is left, answering each kind
    /// as a worker would; returns the kinds in the order they ran.
    fn run_all(&mut self, schema: &SourceSchema) -> Vec<&'static str> {
        let mut ran = vec![];
        while let Some(g) = self.grant() {
            ran.push(g.work.kind());
            let result = match *g.work {
                Work::Introspect { .. } => WorkResult::Introspected(schema.clone()),
                Work::LoadSegment { .. } => loaded(10),
                _ => WorkResult::Done,
            };
            assert_eq!(self.complete(&g, result), Response::Ok, "{}", g.work.kind());
        }
        ran
    }

    fn task(&self, name: &str) -> &Task {
        &self.s.tasks[name]
    }
}

fn loaded(rows: u64) -> WorkResult {
    WorkResult::Loaded {
        rows,
        already_loaded: false,
        exceptions: 0,
        truncated: 0,
        position: None,
    }
}

fn schema(names: &[&str]) -> SourceSchema {
    SourceSchema {
        schemas: vec!["public".into()],
        tables: names.iter().map(|n| table(n)).collect(),
        ..Default::default()
    }
}

/// A full load cutting a table into block ranges reads every segment in
/// one exported snapshot (no slot); when the holder is lost mid-load, the
/// table is emptied and every segment read again in the next snapshot,
/// while a key-range table reads on, untouched.
#[test]
fn a_full_load_in_block_ranges_shares_one_snapshot_and_reloads_when_it_is_lost() {
    let mut m = Machine::new();
    let mut s = spec("fl", MigrationType::FullLoad);
    (s.settings.segment_target_bytes, s.settings.split_tables_larger_than) = (100, 0);
    m.create(s);
    // `keyed` is one key-range segment: it needs no shared snapshot, and
    // losing the holder does not touch it.
    let mut sch = schema(&["heap", "keyed"]);
    let t = &mut sch.tables[0];
    (t.primary_key, t.size_bytes, t.pages) = (None, 400, 100);
    let (mut holder, mut snapshot, mut loads, mut resets, mut keyed) = (None, 0, vec![], vec![], 0);
    while let Some(g) = m.grant() {
        let result = match *g.work {
            Work::Introspect { .. } => WorkResult::Introspected(sch.clone()),
            Work::HoldSnapshot { ref slot, .. } => {
                assert_eq!(*slot, None, "a full load holds its snapshot without a slot");
                snapshot += 1;
                let name = format!("snap{snapshot}");
                let lsn = Position::Wal(Lsn(100 + snapshot));
                progress(&mut m, &g, ProgressDetail::Snapshot { name, lsn });
                holder = Some(g);
                continue;
            }
            Work::LoadSegment {
                ref snapshot,
                gen,
                ref table,
                ..
            } => {
                if table.name == "keyed" {
                    assert_eq!(
                        (snapshot, gen),
                        (&None, 0),
                        "a key-range table reads in its own snapshot"
                    );
                    keyed += 1;
                } else {
                    loads.push((snapshot.clone().expect("read in the shared snapshot"), gen));
                }
                loaded(1)
            }
            Work::ResetTable { gen, .. } => {
                resets.push(gen);
                WorkResult::Done
            }
            _ => WorkResult::Done,
        };
        assert_eq!(m.complete(&g, result), Response::Ok, "{}", g.work.kind());
        if loads.len() == 1 && snapshot == 1 {
            // The holder dies after the first segment committed.
            assert!(m.s.leases.contains_key(&holder.as_ref().unwrap().id));
            m.now += LEASE_MS + 1;
            m.apply(Request::ExpireLeases { now_ms: m.now });
        }
    }
    assert_eq!(m.task("fl").state, TaskState::Completed);
    assert_eq!(snapshot, 2);
    assert_eq!(resets, [2], "the table is emptied for the second snapshot");
    assert_eq!(keyed, 1, "the key-range table is loaded once");
    let expected: Vec<(String, u64)> = std::iter::once(("snap1".to_string(), 1))
        .chain((0..4).map(|_| ("snap2".to_string(), 2)))
        .collect();
    assert_eq!(loads, expected, "every segment read again in the second snapshot");
    assert!(
        !m.s.leases.contains_key(&holder.unwrap().id),
        "the holder lets go once every segment is loaded"
    );
}

#[test]
fn a_full_load_runs_every_unit_once_in_dependency_order() {
    let mut m = Machine::new();
    m.create(spec("fl", MigrationType::FullLoad));
    let ran = m.run_all(&schema(&["a", "b"]));
    assert_eq!(ran[0], "Introspect");
    assert_eq!(ran[1], "Prepare");
    let pos = |k: &str| ran.iter().rposition(|x| *x == k).unwrap();
    assert!(pos("LoadSegment") < ran.iter().position(|x| *x == "PostData").unwrap());
    assert_eq!(*ran.last().unwrap(), "Finalize");
    assert_eq!(ran.iter().filter(|k| **k == "LoadSegment").count(), 2);
    assert!(!ran.contains(&"HoldSnapshot"), "key ranges need no shared snapshot");
    let t = m.task("fl");
    assert_eq!(t.state, TaskState::Completed);
    assert!(m.s.leases.is_empty());
}

#[test]
fn an_expired_lease_is_granted_again_and_its_old_holder_is_fenced() {
    let mut m = Machine::new();
    m.create(spec("fl", MigrationType::FullLoad));
    let intro = m.grant().unwrap();
    assert_eq!(
        m.complete(&intro, WorkResult::Introspected(schema(&["a"]))),
        Response::Ok
    );
    let first = m.grant().unwrap();
    m.now += LEASE_MS + 1;
    m.apply(Request::ExpireLeases { now_ms: m.now });
    assert!(!m.s.leases.contains_key(&first.id));
    let again = m.grant().unwrap();
    assert_eq!(again.work.kind(), first.work.kind(), "the same unit, granted again");
    assert!(again.epoch > first.epoch);
    // The first holder's late report and completion change nothing.
    let late = m.apply(Request::Progress {
        assignment: first.id,
        epoch: first.epoch,
        rows: 5,
        detail: None,
        now_ms: m.now,
    });
    assert!(matches!(late, Response::Fenced(_)), "{late:?}");
    assert!(matches!(m.complete(&first, WorkResult::Done), Response::Fenced(_)));
    // The right assignment with a stale epoch is fenced too.
    let stale = GrantedWork {
        epoch: first.epoch,
        ..again.clone()
    };
    assert!(matches!(m.complete(&stale, WorkResult::Done), Response::Fenced(_)));
    assert_eq!(m.complete(&again, WorkResult::Done), Response::Ok);
}

/// A CDC task up to its running stream; returns the stream's assignment.
fn streaming(m: &mut Machine, tables: &[&str]) -> GrantedWork {
    streaming_task(m, spec("c", MigrationType::FullLoadAndCdc), tables)
}

/// Task `spec` up to its running stream.
fn streaming_task(m: &mut Machine, spec: TaskSpec, tables: &[&str]) -> GrantedWork {
    m.create(spec);
    let sch = schema(tables);
    loop {
        let g = m.grant().expect("work until the stream runs");
        let result = match *g.work {
            Work::Introspect { .. } => WorkResult::Introspected(sch.clone()),
            Work::CreateSlot { .. } => WorkResult::SlotReady {
                consistent_point: Position::Wal(Lsn(100)),
                insert_only: vec![],
            },
            Work::HoldSnapshot { .. } => {
                progress(
                    m,
                    &g,
                    ProgressDetail::Snapshot {
                        name: "snap".into(),
                        lsn: Position::Wal(Lsn(110)),
                    },
                );
                continue;
            }
            Work::LoadSegment { .. } => loaded(1),
            Work::Cdc { .. } => return g,
            _ => WorkResult::Done,
        };
        assert_eq!(m.complete(&g, result), Response::Ok, "{}", g.work.kind());
    }
}

fn progress(m: &mut Machine, g: &GrantedWork, detail: ProgressDetail) -> Response {
    m.apply(Request::Progress {
        assignment: g.id,
        epoch: g.epoch,
        rows: 0,
        detail: Some(Box::new(detail)),
        now_ms: m.now,
    })
}

fn report(m: &mut Machine, g: &GrantedWork, p: CdcProgress) -> Response {
    progress(m, g, ProgressDetail::Cdc(p))
}

#[test]
fn a_table_dropped_on_the_source_leaves_the_stream_and_joins_again_when_created_again() {
    let mut m = Machine::new();
    let stream = streaming(&mut m, &["a", "gone"]);
    let Work::Cdc { tables, .. } = &*stream.work else {
        unreachable!()
    };
    assert_eq!(tables.len(), 2);

    let dropped = CdcProgress {
        applied: Some(Position::Wal(Lsn(200))),
        tables_dropped: vec!["public.gone".into()],
        ..Default::default()
    };
    assert!(matches!(report(&mut m, &stream, dropped), Response::Progressed { .. }));
    let t = m.task("c");
    assert!(t.is_dropped("public.gone"));
    assert!(t.cdc.as_ref().unwrap().table_errors.is_empty());
    assert!(m.s.leases.contains_key(&stream.id), "the stream goes on");

    // A stream started now does not have it.
    let t = m.s.tasks.get_mut("c").unwrap();
    let cdc_unit = t.units.iter().position(|u| u.kind == UnitKind::Cdc).unwrap();
    let Work::Cdc { tables, .. } = t.work_for(cdc_unit) else {
        unreachable!()
    };
    assert_eq!(tables.iter().map(|c| c.table.name.as_str()).collect::<Vec<_>>(), ["a"]);

    // Created again: the stream stops for it, it is read, replaced on the
    // target, loaded, and the stream resumes with it.
    let created = CdcProgress {
        applied: Some(Position::Wal(Lsn(300))),
        new_tables: vec![TableRef {
            schema: "public".into(),
            name: "gone".into(),
        }],
        ..Default::default()
    };
    report(&mut m, &stream, created);
    assert!(
        !m.s.leases.contains_key(&stream.id),
        "the stream is revoked for the reload"
    );
    assert!(!m.task("c").is_dropped("public.gone"));
    let mut saw_replace = false;
    loop {
        let g = m.grant().expect("work until the stream runs again");
        let result = match *g.work {
            Work::Reintrospect { .. } => WorkResult::Introspected(schema(&["gone"])),
            Work::ResetTable { replace, .. } => {
                saw_replace = replace;
                WorkResult::Done
            }
            Work::HoldSnapshot { .. } => {
                progress(
                    &mut m,
                    &g,
                    ProgressDetail::Snapshot {
                        name: "snap2".into(),
                        lsn: Position::Wal(Lsn(310)),
                    },
                );
                continue;
            }
            Work::LoadSegment { .. } => loaded(1),
            Work::Cdc { ref tables, .. } => {
                assert_eq!(tables.len(), 2);
                let gone = tables.iter().find(|c| c.table.name == "gone").unwrap();
                assert_eq!(
                    gone.apply_from,
                    Some(Position::Wal(Lsn(310))),
                    "its changes apply from the new snapshot on"
                );
                break;
            }
            _ => WorkResult::Done,
        };
        assert_eq!(m.complete(&g, result), Response::Ok, "{}", g.work.kind());
    }
    assert!(saw_replace, "the target table of that name is replaced");
}

#[test]
fn work_settled_by_a_drop_ignores_its_late_report() {
    let mut m = Machine::new();
    let stream = streaming(&mut m, &["a"]);
    // A validation-like unit still running on the table when it is dropped.
    let t = m.s.tasks.get_mut("c").unwrap();
    t.units.push(Unit::new(UnitKind::Validate { table: 0, segment: 0 }));
    let g = m.grant().expect("the validation is granted");
    let dropped = CdcProgress {
        tables_dropped: vec!["public.a".into()],
        ..Default::default()
    };
    report(&mut m, &stream, dropped);
    let failed = m.apply(Request::Fail {
        assignment: g.id,
        epoch: g.epoch,
        error: "relation does not exist".into(),
        retryable: false,
        suspend_table: false,
        now_ms: m.now,
    });
    assert!(matches!(failed, Response::Ok | Response::Fenced(_)), "{failed:?}");
    assert_eq!(m.task("c").state, TaskState::Running, "the task did not fail");
}

/// Validation waits for the stream it validates behind: while the stream's
/// holder has stopped renewing (dead, its lease not yet expired), no
/// validation is handed out to sit in the slot the stream needs next.
#[test]
fn validation_is_not_granted_behind_a_stream_whose_holder_stopped_renewing() {
    let mut m = Machine::new();
    let mut s = spec("c", MigrationType::FullLoadAndCdc);
    s.settings.validation.enabled = true;
    let stream = streaming_task(&mut m, s, &["a"]);
    // Three quarters of a lease without a renewal: the holder is fading.
    m.now += LEASE_MS * 3 / 4;
    assert!(m.grant().is_none(), "validation granted behind a fading stream");
    // Renewed: validation goes out.
    let renewed = m.apply(Request::Renew {
        worker: m.worker,
        assignments: vec![(stream.id, stream.epoch)],
        now_ms: m.now,
        lease_ms: LEASE_MS,
    });
    assert_eq!(
        renewed,
        Response::Renewed {
            revoked: vec![],
            unknown_worker: false
        }
    );
    let v = m.grant().expect("validation once the stream is renewed");
    assert_eq!(v.work.kind(), "ValidateSegment");
}

#[test]
fn an_endpoint_in_use_is_not_deleted() {
    let mut s = State::default();
    let mut d = Dirty::default();
    let src = Endpoint::parse("postgres://app@src:5432/db?password_env=PW").unwrap();
    let create = |name: &str| Request::CreateEndpoint {
        name: name.into(),
        endpoint: src.clone(),
        now_ms: 1,
    };
    assert_eq!(s.apply(create("prod"), &mut d), Response::Ok);
    assert!(matches!(s.apply(create("prod"), &mut d), Response::Error(e) if e.contains("already exists")));
    let mut t = spec("t1", MigrationType::FullLoad);
    t.source_endpoint = Some("prod".into());
    assert_eq!(
        s.apply(
            Request::CreateTask {
                spec: Box::new(t.clone()),
                now_ms: 1,
                cdc_stop: None,
            },
            &mut d
        ),
        Response::Ok
    );
    let delete = || Request::DeleteEndpoint { name: "prod".into() };
    assert!(matches!(s.apply(delete(), &mut d), Response::Error(e) if e.contains("used by task(s) t1")));
    // The reverse task names it as its target.
    assert_eq!(t.reversed().target_endpoint.as_deref(), Some("prod"));
    assert_eq!(
        s.apply(
            Request::DeleteTask {
                name: "t1".into(),
                force: true
            },
            &mut d
        ),
        Response::Deleted
    );
    assert_eq!(s.apply(delete(), &mut d), Response::Ok);
    assert!(matches!(s.apply(delete(), &mut d), Response::Error(e) if e.contains("not found")));
}

/// Applies what the leader's cutover driver would propose now, if anything.
fn drive(m: &mut Machine, name: &str) -> bool {
    match crate::cutover::next_move(&m.s, name) {
        Some(req) => {
            assert_eq!(m.apply(req), Response::Ok);
            true
        }
        None => false,
    }
}

fn switch(m: &Machine, name: &str) -> crate::cutover::Switch {
    m.task(name).switch.clone().expect("a switch on record")
}

fn cutover_plan(freeze: bool, hook: bool) -> crate::cutover::SwitchPlan {
    crate::cutover::SwitchPlan {
        direction: crate::cutover::Direction::Cutover,
        freeze,
        dry_run: false,
        hook,
    }
}

/// `ferry cutover c` on task "c".
fn start_cutover(m: &mut Machine, freeze: bool, hook: bool) {
    let now_ms = m.now;
    let start = Request::StartSwitch {
        name: "c".into(),
        plan: cutover_plan(freeze, hook),
        now_ms,
    };
    assert_eq!(m.apply(start), Response::Ok);
}

#[test]
fn a_cutover_advances_once_per_step_and_waits_for_its_hook() {
    use crate::cutover::Step;
    let mut m = Machine::new();
    let stream = streaming(&mut m, &["a"]);
    let start = Request::StartSwitch {
        name: "c".into(),
        plan: cutover_plan(true, true),
        now_ms: m.now,
    };
    assert_eq!(m.apply(start.clone()), Response::Ok);
    let sw = switch(&m, "c");
    assert_eq!(
        sw.plan,
        [Step::Freeze, Step::Drain, Step::Sequences, Step::Reverse, Step::Hook]
    );
    assert!(sw.frozen);
    // A second start while one is in progress is refused, by name.
    assert!(matches!(m.apply(start), Response::Error(e) if e.contains("in progress at step freeze")));

    // Freeze: waits for the worker's unit.
    assert!(!drive(&mut m, "c"));
    let g = m.grant().expect("the freeze unit");
    assert_eq!(g.work.kind(), "FreezeSource");
    assert_eq!(m.complete(&g, WorkResult::Done), Response::Ok);
    let advance = crate::cutover::next_move(&m.s, "c").expect("freeze done");
    assert_eq!(m.apply(advance.clone()), Response::Ok);
    assert_eq!(switch(&m, "c").step(), Some(Step::Drain));
    // The same proposal again (a deposed leader's): nothing moves.
    assert_eq!(m.apply(advance), Response::Ok);
    assert_eq!(switch(&m, "c").step(), Some(Step::Drain));

    // Drain: waits for the mark the step requested.
    assert!(!drive(&mut m, "c"));
    let mark = m.task("c").cdc.as_ref().unwrap().marks_requested;
    let reached = CdcProgress {
        applied: Some(Position::Wal(Lsn(300))),
        marks_reached: mark,
        ..Default::default()
    };
    assert!(matches!(report(&mut m, &stream, reached), Response::Progressed { .. }));
    assert!(drive(&mut m, "c"));

    // Sequences, then the reverse task, created and started.
    let g = m.grant().expect("the sequences unit");
    assert_eq!(g.work.kind(), "SyncSequences");
    assert_eq!(m.complete(&g, WorkResult::Done), Response::Ok);
    assert!(drive(&mut m, "c"));
    assert_eq!(m.task("c").state, TaskState::Stopped);
    assert_eq!(m.task("c-reverse").state, TaskState::Running);
    // Past the reverse stream, abandoning is refused: rollback goes back.
    assert!(
        matches!(m.apply(Request::AbandonSwitch { name: "c".into(), now_ms: m.now }), Response::Error(e) if e.contains("ferry rollback c"))
    );
    assert!(!drive(&mut m, "c"), "the reverse stream does not run yet");
    let sch = schema(&["a"]);
    loop {
        let g = m.grant().expect("the reverse task's work");
        let result = match *g.work {
            Work::Introspect { .. } => WorkResult::Introspected(sch.clone()),
            Work::CreateSlot { .. } => WorkResult::SlotReady {
                consistent_point: Position::Wal(Lsn(100)),
                insert_only: vec![],
            },
            Work::Cdc { .. } => break,
            _ => WorkResult::Done,
        };
        assert_eq!(m.complete(&g, result), Response::Ok);
    }
    assert!(drive(&mut m, "c"));

    // The hook: only the CLI's report moves it.
    let sw = switch(&m, "c");
    assert_eq!(sw.state(), "awaiting-hook");
    assert!(!drive(&mut m, "c"));
    let at = sw.at;
    assert_eq!(
        m.apply(Request::AdvanceSwitch {
            name: "c".into(),
            at,
            note: String::new(),
            now_ms: m.now + 5,
        }),
        Response::Ok
    );
    let sw = switch(&m, "c");
    assert_eq!(sw.state(), "done");
    assert_eq!(sw.done.len(), 5);
    assert_eq!(sw.finished_ms, m.now + 5);
}

#[test]
fn a_failed_step_is_entered_again_on_resume_and_an_abandon_unfreezes() {
    use crate::cutover::Step;
    let mut m = Machine::new();
    let _stream = streaming(&mut m, &["a"]);
    start_cutover(&mut m, true, false);
    let g = m.grant().expect("the freeze unit");
    assert_eq!(
        m.apply(Request::Fail {
            assignment: g.id,
            epoch: g.epoch,
            error: "permission denied".into(),
            retryable: false,
            suspend_table: false,
            now_ms: m.now,
        }),
        Response::Ok
    );
    assert!(drive(&mut m, "c"));
    let sw = switch(&m, "c");
    assert_eq!(sw.state(), "failed");
    assert!(sw.failed.as_deref().unwrap().contains("permission denied"));
    assert!(!drive(&mut m, "c"), "a failed switch waits for the operator");

    // --resume: a new freeze unit.
    assert_eq!(
        m.apply(Request::ResumeSwitch {
            name: "c".into(),
            now_ms: m.now,
        }),
        Response::Ok
    );
    assert_eq!(switch(&m, "c").state(), "running");
    let g = m.grant().expect("the freeze unit again");
    assert_eq!(g.work.kind(), "FreezeSource");
    assert_eq!(m.complete(&g, WorkResult::Done), Response::Ok);
    assert!(drive(&mut m, "c"));
    assert_eq!(switch(&m, "c").step(), Some(Step::Drain));

    // --unfreeze-source during the drain: the rest of the plan gives way to
    // unfreezing; the forward task keeps running.
    assert_eq!(
        m.apply(Request::AbandonSwitch {
            name: "c".into(),
            now_ms: m.now,
        }),
        Response::Ok
    );
    let sw = switch(&m, "c");
    assert_eq!(sw.plan, [Step::Freeze, Step::Unfreeze]);
    assert_eq!(sw.state(), "abandoning");
    let g = m.grant().expect("the unfreeze unit");
    assert!(
        matches!(*g.work, Work::FreezeSource { freeze: false, .. }),
        "{:?}",
        g.work
    );
    assert_eq!(m.complete(&g, WorkResult::Done), Response::Ok);
    assert!(drive(&mut m, "c"));
    let sw = switch(&m, "c");
    assert_eq!(sw.state(), "abandoned");
    assert!(!sw.frozen);
    assert_eq!(m.task("c").state, TaskState::Running);
}

#[test]
fn an_unfreeze_never_overtakes_the_freeze_it_undoes() {
    let mut m = Machine::new();
    let _stream = streaming(&mut m, &["a"]);
    start_cutover(&mut m, true, false);
    // Abandoned before any worker took the freeze: both queue, in order.
    assert_eq!(
        m.apply(Request::AbandonSwitch {
            name: "c".into(),
            now_ms: m.now,
        }),
        Response::Ok
    );
    let freeze = m.grant().expect("the freeze first");
    assert!(matches!(*freeze.work, Work::FreezeSource { freeze: true, .. }));
    assert!(m.grant().is_none(), "the unfreeze waits while the freeze runs");
    assert_eq!(m.complete(&freeze, WorkResult::Done), Response::Ok);
    let unfreeze = m.grant().expect("then the unfreeze");
    assert!(matches!(*unfreeze.work, Work::FreezeSource { freeze: false, .. }));
}

#[test]
fn max_capacity_caps_the_units_a_task_holds() {
    let mut m = Machine::new();
    let mut s = spec("capped", MigrationType::FullLoad);
    s.settings.capacity.max = Some(2);
    m.create(s);
    let intro = m.grant().unwrap();
    m.complete(&intro, WorkResult::Introspected(schema(&["a", "b", "c", "d"])));
    let prep = m.grant().unwrap();
    m.complete(&prep, WorkResult::Done);
    let first = m.grant().expect("a segment");
    let second = m.grant().expect("a second segment");
    assert!(
        m.grant().is_none(),
        "a third unit would exceed MaxCapacityUnits 2 (the worker has 4 slots)"
    );
    let c = crate::capacity::of_task(m.task("capped"));
    assert_eq!((c.desired, c.granted), (2, 2), "{c:?}");
    assert!(c.reason.contains("capped at MaxCapacityUnits 2"), "{}", c.reason);
    m.complete(&first, loaded(1));
    assert!(m.grant().is_some(), "a unit freed is granted again");
    m.complete(&second, loaded(1));
}

#[test]
fn a_released_unit_is_granted_again_at_once_without_an_attempt() {
    let mut m = Machine::new();
    m.create(spec("r", MigrationType::FullLoad));
    let intro = m.grant().unwrap();
    assert_eq!(
        m.apply(Request::Release {
            assignment: intro.id,
            epoch: intro.epoch
        }),
        Response::Ok
    );
    let again = m.grant().expect("granted again before any lease expiry");
    assert_eq!(again.work.kind(), "Introspect");
    assert_eq!(m.task("r").units[0].attempts, 0, "a hand-back is not a failed attempt");
    // The old holder's late release or completion is fenced.
    let stale = m.apply(Request::Release {
        assignment: intro.id,
        epoch: intro.epoch,
    });
    assert!(matches!(stale, Response::Fenced(_)), "{stale:?}");
}

#[test]
fn desired_capacity_counts_segments_up_to_the_subtask_limit_and_the_stream() {
    let mut m = Machine::new();
    let mut s = spec("d", MigrationType::FullLoad);
    s.settings.max_full_load_subtasks = 3;
    s.settings.capacity.min = 1;
    m.create(s);
    let c = crate::capacity::of_task(m.task("d"));
    assert_eq!((c.desired, c.reason.as_str()), (1, "1 step"));
    let intro = m.grant().unwrap();
    m.complete(&intro, WorkResult::Introspected(schema(&["a", "b", "c", "d", "e"])));
    let c = crate::capacity::of_task(m.task("d"));
    // Prepare can run; five segments wait, three of which could run at once.
    assert_eq!(c.desired, 4, "{c:?}");
    assert!(c.reason.contains("5 segments waiting"), "{}", c.reason);
    m.run_all(&schema(&[]));
    let c = crate::capacity::of_task(m.task("d"));
    assert_eq!((c.desired, c.reason.as_str()), (0, "task completed"));

    let mut m = Machine::new();
    streaming(&mut m, &["a"]);
    let c = crate::capacity::of_task(m.task("c"));
    assert_eq!(c.desired, 1, "{c:?}");
    assert!(c.reason.starts_with("CDC stream (latency"), "{}", c.reason);
}

/// An errand goes to one worker only; only that worker answers it; the
/// asker removes it, or time does when the asker is gone.
#[test]
fn an_errand_is_taken_once_and_answered_by_its_taker() {
    let mut m = Machine::new();
    let endpoint = Endpoint::parse("postgres://u@src:5432/db").unwrap();
    let now_ms = m.now;
    let Response::Errand(id) = m.apply(Request::QueueErrand {
        errand: Errand::TestEndpoint { endpoint },
        now_ms,
    }) else {
        panic!("no errand id")
    };
    assert!(m.s.errand_waiting());
    let Response::Worker(other) = m.apply(Request::RegisterWorker {
        name: "w2".into(),
        slots: 1,
        now_ms,
    }) else {
        panic!("no worker id")
    };
    let worker = m.worker;
    assert!(matches!(m.apply(Request::TakeErrand { worker }), Response::TakenErrand(Some((i, _))) if i == id));
    assert!(!m.s.errand_waiting());
    assert_eq!(
        m.apply(Request::TakeErrand { worker: other }),
        Response::TakenErrand(None)
    );
    let answer = |worker| Request::FinishErrand {
        id,
        worker,
        outcome: Ok("{}".into()),
    };
    assert!(matches!(m.apply(answer(other)), Response::Fenced(_)));
    assert_eq!(m.apply(answer(worker)), Response::Ok);
    assert_eq!(m.s.errands[&id].outcome, Some(Ok("{}".into())));
    assert_eq!(m.apply(Request::DropErrand { id }), Response::Ok);
    assert!(m.s.errands.is_empty());

    // One nobody collects expires.
    let endpoint = Endpoint::parse("postgres://u@src:5432/db").unwrap();
    m.apply(Request::QueueErrand {
        errand: Errand::TestEndpoint { endpoint },
        now_ms,
    });
    m.now += ERRAND_TTL_MS;
    m.apply(Request::ExpireLeases { now_ms: m.now });
    assert!(m.s.errands.is_empty());
}

#[test]
fn a_stream_that_reaches_its_stop_position_stops_the_task_until_started_again() {
    let mut m = Machine::new();
    let stop = CdcStop::parse("0/500", Engine::Postgres).unwrap();
    // Not while it runs: the stream in flight was given no stop.
    let stream = streaming(&mut m, &["a"]);
    let start = |stop: &CdcStop| Request::StartTask {
        name: "c".into(),
        now_ms: 1,
        cdc_stop: Some(stop.clone()),
    };
    assert!(matches!(m.apply(start(&stop)), Response::Error(e) if e.contains("ferry task stop c")));
    assert_eq!(m.apply(Request::StopTask { name: "c".into() }), Response::Ok);
    assert_eq!(m.apply(start(&stop)), Response::Ok);
    let g = m.grant().expect("the stream again");
    let Work::Cdc { stop: given, .. } = &*g.work else {
        panic!("{}", g.work.kind())
    };
    assert_eq!(given.as_ref(), Some(&stop));
    assert!(!m.s.leases.contains_key(&stream.id));

    let reached = CdcProgress {
        applied: Some(Position::Wal(Lsn(0x4ff))),
        stop_reached: true,
        ..Default::default()
    };
    assert!(matches!(report(&mut m, &g, reached), Response::Progressed { .. }));
    let t = m.task("c");
    assert_eq!(t.state, TaskState::Stopped);
    let why = t.error.as_deref().unwrap();
    assert!(why.contains("position 0/500") && why.contains("through 0/4FF"), "{why}");
    assert!(t.cdc_stop.is_none());
    assert!(!m.s.leases.contains_key(&g.id), "the stream is revoked");

    // Started again without a stop: it streams on with none.
    assert_eq!(
        m.apply(Request::StartTask {
            name: "c".into(),
            now_ms: 1,
            cdc_stop: None
        }),
        Response::Ok
    );
    let g = m.grant().expect("the stream once more");
    assert!(matches!(&*g.work, Work::Cdc { stop: None, .. }));

    // A full-load task has nothing to stop.
    m.create(spec("f", MigrationType::FullLoad));
    assert_eq!(m.apply(Request::StopTask { name: "f".into() }), Response::Ok);
    let refused = m.apply(Request::StartTask {
        name: "f".into(),
        now_ms: 1,
        cdc_stop: Some(stop),
    });
    assert!(matches!(refused, Response::Error(e) if e.contains("full-load task")));
}

/// DataErrorPolicy SUSPEND_TABLE during the full load (a segment failing
/// with `suspend_table`): the table's other units are set aside, it is in
/// `Table error`, and the full-load task completes without it; under
/// TableErrorPolicy STOP_TASK the same report fails the task.
#[test]
fn a_table_suspended_in_its_full_load_is_set_aside_and_the_task_goes_on() {
    for stop_task in [false, true] {
        let mut m = Machine::new();
        let mut s = spec("sl", MigrationType::FullLoad);
        if stop_task {
            s.settings.table_errors = ErrorAction::StopTask;
        }
        m.create(s);
        let sch = schema(&["bad", "good"]);
        let mut suspended = false;
        while let Some(g) = m.grant() {
            let result = match *g.work {
                Work::Introspect { .. } => WorkResult::Introspected(sch.clone()),
                Work::LoadSegment { ref table, .. } if table.name == "bad" && !suspended => {
                    suspended = true;
                    let r = m.apply(Request::Fail {
                        assignment: g.id,
                        epoch: g.epoch,
                        error: "a row cannot be stored; DataErrorPolicy SUSPEND_TABLE stops at the first".into(),
                        retryable: false,
                        suspend_table: true,
                        now_ms: m.now,
                    });
                    assert_eq!(r, Response::Ok);
                    continue;
                }
                Work::LoadSegment { ref table, .. } => {
                    assert_eq!(table.name, "good", "a suspended table's segment was granted");
                    loaded(10)
                }
                Work::PostData { ref table, .. } => {
                    assert_eq!(table.name, "good", "a suspended table got its indexes");
                    WorkResult::Done
                }
                Work::Finalize { validate, .. } => {
                    assert!(!validate, "foreign keys onto a partly loaded table checked");
                    WorkResult::Finalized { failed_objects: vec![] }
                }
                _ => WorkResult::Done,
            };
            assert_eq!(m.complete(&g, result), Response::Ok, "{}", g.work.kind());
        }
        assert!(suspended);
        let t = m.task("sl");
        if stop_task {
            assert_eq!(t.state, TaskState::Failed);
            assert!(
                t.error
                    .as_deref()
                    .unwrap_or_default()
                    .contains("TableErrorPolicy STOP_TASK"),
                "{:?}",
                t.error
            );
            continue;
        }
        assert_eq!(t.state, TaskState::Completed);
        let (state, _, _, _, error) = t.table_progress(0);
        assert_eq!(state, "Table error");
        assert!(error.unwrap_or_default().contains("SUSPEND_TABLE"));
        assert_eq!(t.table_progress(1).0, "Table completed");
    }
}
