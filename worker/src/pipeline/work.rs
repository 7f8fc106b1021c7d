//! One assignment's work, carried out through the engine seams: each kind
//! of work names the seam it needs, and `with_engine!` picks the engine of
//! the endpoint it runs against.

use super::apply::TablePolicy;
use super::load::{self, Load};
use super::validate;
use crate::engine::source::{ChangeSource, ChangeStream, Segmenting, Source};
use crate::engine::target::{Segment, Target};
use crate::engine::{with_engine, ConnectorError, Progress, Run};
use crate::report::Reporter;
use ferry_common::control::ControlTables;
use ferry_common::lob::LobSettings;
use ferry_common::mapping::TableMappings;
use ferry_common::schema::SourceSchema;
use ferry_common::transform::RuleTarget;
use ferry_common::work::{Work, WorkResult};

/// Gives each introspected table the source filter, the target names and
/// the LOB limit the mappings and settings set for it, checked against its
/// columns, so a filter that
/// names a missing column or a value its column cannot hold, a rule that
/// removes a key column, or two tables renamed onto one, fails the task
/// before any row moves.
fn with_rules(
    mut schema: SourceSchema,
    mappings: &TableMappings,
    lob: &LobSettings,
    control: &ControlTables,
) -> Result<SourceSchema, ConnectorError> {
    let definite = |e: &dyn std::fmt::Display| ConnectorError::Definite(e.to_string());
    // The task's own control tables (a source that was a target, as in a
    // rollback task) are never migrated.
    schema.tables.retain(|t| t.schema != control.schema);
    // Resolved against every table first: foreign keys name other tables.
    let transforms = schema
        .tables
        .iter()
        .map(|t| mappings.transform_for(t, &schema.tables))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| definite(&e))?;
    let mut targets: Vec<((String, String), String)> = vec![];
    for (t, transform) in schema.tables.iter_mut().zip(transforms) {
        t.filter = mappings.filter_for(&t.schema, &t.name).map_err(|e| definite(&e))?;
        if let Some(f) = &t.filter {
            f.bind(t).map_err(|e| definite(&e))?;
        }
        t.transform = transform;
        let rule = mappings.lob_rule_for(&t.schema, &t.name).map_err(|e| definite(&e))?;
        let columns = t.columns.iter().map(|c| (c.name.as_str(), c.type_sql.as_str()));
        let key = t.primary_key.as_ref().map(|k| k.columns.clone()).unwrap_or_default();
        t.lob = ferry_common::lob::limit_for(t.engine, columns, &key, lob, rule);
        let renamed = ferry_common::transform::renamed(t).map_err(|e| definite(&e))?;
        let to = (renamed.schema.clone(), renamed.name.clone());
        if let Some((_, first)) = targets.iter().find(|(k, _)| *k == to) {
            return Err(ConnectorError::Definite(format!(
                "tables {first} and {} are both renamed to {}.{}; rename one of them",
                t.display_name(),
                to.0,
                to.1
            )));
        }
        targets.push((to, t.display_name()));
    }
    // The target's schemas: those the (renamed) tables land in and those
    // holding the types they use; a schema renamed away is not created.
    if mappings.transforms.iter().any(|r| r.target == RuleTarget::Schema) {
        let types = schema.types.clone();
        schema
            .schemas
            .retain(|s| types.iter().any(|t| t.schema == *s) || targets.iter().any(|((to, _), _)| to == s));
    }
    for ((s, _), _) in targets {
        if !schema.schemas.contains(&s) {
            schema.schemas.push(s);
        }
    }
    Ok(schema)
}

/// What a running assignment can report through.
pub struct WorkContext {
    pub run: Run,
    pub progress: Progress,
    pub reporter: Reporter,
}

pub async fn run(work: Work, ctx: WorkContext) -> Result<WorkResult, ConnectorError> {
    let run = &ctx.run;
    match work {
        Work::Introspect {
            source,
            mappings,
            segment_target_bytes,
            max_segments_per_table,
            lob,
        } => {
            let segmenting = Segmenting {
                target_bytes: segment_target_bytes,
                max_per_table: max_segments_per_table,
            };
            let schema = with_engine!(source.engine, |e| e
                .introspect(&source, &mappings, segmenting, None)
                .await)?;
            with_rules(schema, &mappings, &lob, &run.control).map(WorkResult::Introspected)
        }
        Work::Reintrospect {
            source,
            target,
            mappings,
            table,
            cdc,
            lob,
        } => {
            // Raises the target's CDC apply-state epoch to this
            // assignment's first: the stream revoked for the reload commits
            // nothing after this (see `Work::Reintrospect`).
            with_engine!(target.engine, |e| e.fence_stream(run, &target).await)?;
            tracing::info!(
                epoch = run.epoch,
                "CDC apply state fenced: the stopped stream commits nothing more"
            );
            let schema = with_engine!(source.engine, |e| {
                e.publish_table(&source, &cdc, &table).await?;
                e.introspect(&source, &mappings, Segmenting::WHOLE, Some(&table)).await
            })?;
            with_rules(schema, &mappings, &lob, &run.control).map(WorkResult::Introspected)
        }
        Work::Prepare {
            target,
            schema,
            prep_mode,
            defer_primary_key,
            pre_data_sql,
        } => with_engine!(target.engine, |e| e
            .prepare(
                run,
                &target,
                &schema,
                prep_mode,
                defer_primary_key,
                pre_data_sql.as_deref()
            )
            .await)
        .map(|_| WorkResult::Done),
        Work::LoadSegment {
            source,
            target,
            table,
            segment,
            bounds,
            snapshot,
            gen,
            defer_primary_key,
            target_may_hold_rows,
            data_errors,
        } => {
            let job = Load {
                source: &source,
                target: &target,
                table: &table,
                seg: Segment {
                    number: segment,
                    bounds: &bounds,
                    snapshot: snapshot.as_deref(),
                    gen,
                    replace: target_may_hold_rows,
                    fresh: defer_primary_key,
                    position: None,
                    data_errors,
                    cuts: Default::default(),
                },
            };
            load::load_segment(run, job, ctx.progress.clone()).await
        }
        Work::ResetTable {
            target,
            table,
            gen,
            previous,
            replace,
        } => with_engine!(target.engine, |e| e
            .reset_table(run, &target, &table, gen, previous.as_ref(), replace)
            .await),
        Work::CreateSlot {
            source,
            cdc,
            tables,
            existing_slot,
        } => with_engine!(source.engine, |e| e
            .create_slot(&source, &cdc, &tables, existing_slot)
            .await),
        Work::HoldSnapshot { source, slot } => {
            with_engine!(source.engine, |e| e
                .hold_snapshot(&source, slot.as_deref(), &ctx.reporter)
                .await)
        }
        Work::Cdc {
            source,
            target,
            cdc,
            tables,
            start,
            discover,
            apply_truncates,
            drop_dropped,
            insert_missing,
            missing_rows,
            lanes,
            data_errors,
            table_errors,
            stop,
            batch_timing,
            suspended,
        } => {
            let stream = ChangeStream {
                source: &source,
                target: &target,
                cdc: &cdc,
                tables: &tables,
                start,
                policy: TablePolicy {
                    discover: discover.as_ref(),
                    apply_truncates,
                    drop_dropped,
                    insert_missing,
                    missing_rows,
                    data_errors,
                    table_errors,
                    batch_timing,
                    suspended: &suspended,
                },
                lanes: lanes.max(1) as usize,
                stop,
            };
            with_engine!(source.engine, |e| e.stream(stream, run, &ctx.reporter).await)
        }
        Work::DropSlot { source, cdc, keep_slot } => {
            with_engine!(source.engine, |e| e.drop_slot(&source, &cdc, keep_slot).await)
        }
        Work::ValidateSegment {
            task,
            source,
            target,
            table,
            segment,
            bounds,
            partition_size,
            settle,
        } => {
            validate::validate_segment(validate::Job {
                task: &task,
                control: &ctx.run.control,
                source: &source,
                target: &target,
                table: &table,
                segment,
                bounds: &bounds,
                partition_size,
                settle: settle.then_some(&ctx.reporter),
            })
            .await
        }
        Work::FreezeSource { source, freeze } => {
            with_engine!(source.engine, |e| e.freeze(&source, freeze).await).map(|_| WorkResult::Done)
        }
        Work::SyncSequences { source, target, tables } => {
            with_engine!(target.engine, |e| e.sync_sequences(&source, &target, &tables).await).map(|_| WorkResult::Done)
        }
        Work::PostData {
            source,
            target,
            table,
            defer_primary_key,
            expected_rows,
        } => {
            if let Some(expected) = expected_rows {
                load::check_loaded_rows(&target, &table, expected).await?;
            }
            with_engine!(target.engine, |e| e
                .post_data(&source, &target, &table, defer_primary_key)
                .await)
            .map(|_| WorkResult::Done)
        }
        Work::Finalize {
            target,
            foreign_keys,
            validate,
            post_data_sql,
        } => with_engine!(target.engine, |e| e
            .finalize(run, &target, &foreign_keys, validate, post_data_sql.as_deref())
            .await),
    }
}
