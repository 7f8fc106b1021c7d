//! PostgreSQL connector: introspection, target preparation, segment load,
//! change data capture.

mod array;
pub(crate) mod catalog;
pub(crate) mod cdc;
pub(crate) mod connect;
pub(crate) mod cutover;
pub(crate) mod encode;
pub(crate) mod introspect;
pub(crate) mod load;
pub(crate) mod read;
pub(crate) mod schema;
pub(crate) mod target;
pub(crate) mod validate;

use super::{ConnectorError, WorkContext};
pub use connect::connect;
use ferry_common::work::{Work, WorkResult};

pub async fn run(work: Work, ctx: WorkContext) -> Result<WorkResult, ConnectorError> {
    match work {
        Work::Introspect {
            source,
            mappings,
            segment_target_bytes,
            max_segments_per_table,
        } => introspect::introspect(&source, &mappings, segment_target_bytes, max_segments_per_table, None)
            .await
            .map(WorkResult::Introspected),
        Work::Reintrospect {
            source,
            mappings,
            table,
            cdc,
            ..
        } => {
            cdc::slot::publish_table(&source, &cdc, &table).await?;
            introspect::introspect(&source, &mappings, u64::MAX, 1, Some(&table))
                .await
                .map(WorkResult::Introspected)
        }
        Work::Prepare {
            target,
            schema,
            prep_mode,
            defer_primary_key,
            pre_data_sql,
        } => schema::prepare(&target, &schema, prep_mode, defer_primary_key, pre_data_sql.as_deref())
            .await
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
        } => {
            load::load_segment(
                &source,
                &target,
                &table,
                load::Segment {
                    number: segment,
                    bounds: &bounds,
                    snapshot: snapshot.as_deref(),
                    gen,
                    replace: target_may_hold_rows,
                    fresh: defer_primary_key,
                    position: None,
                },
                ctx.progress,
            )
            .await
        }
        Work::ResetTable {
            target,
            table,
            gen,
            previous,
            replace,
        } => load::reset_table(&target, &table, gen, previous.as_ref(), replace).await,
        Work::CreateSlot {
            source,
            cdc,
            tables,
            existing_slot,
        } => cdc::slot::create(&source, &cdc, &tables, existing_slot).await,
        Work::HoldSnapshot { source, slot } => cdc::slot::hold_snapshot(&source, &slot, &ctx.reporter).await,
        Work::Cdc {
            source,
            target,
            cdc,
            tables,
            start,
            discover,
            apply_truncates,
            drop_dropped,
        } => {
            let policy = crate::pipeline::apply::TablePolicy {
                discover: discover.as_ref(),
                apply_truncates,
                drop_dropped,
            };
            cdc::apply::run(&source, &target, &cdc, &tables, start, policy, &ctx.reporter).await
        }
        Work::DropSlot { source, cdc, keep_slot } => cdc::slot::drop(&source, &cdc, keep_slot).await,
        // Engine-neutral; `engine::run_work` takes it before dispatch.
        Work::ValidateSegment { .. } | Work::FreezeSource { .. } | Work::SyncSequences { .. } => Err(
            ConnectorError::Definite(format!("{} is dispatched by the engine module", work.kind())),
        ),
        Work::PostData {
            source,
            target,
            table,
            defer_primary_key,
            ..
        } => schema::post_data(&source, &target, &table, defer_primary_key)
            .await
            .map(|_| WorkResult::Done),
        Work::Finalize {
            target,
            foreign_keys,
            validate,
            post_data_sql,
        } => schema::finalize(&target, &foreign_keys, validate, post_data_sql.as_deref()).await,
    }
}

/// Classifies a driver error: SQLSTATE classes 08 (connection), 40
/// (serialization/deadlock), 53 (resources), 57 (operator intervention, e.g.
/// shutdown) and I/O without a SQLSTATE are transient; the rest are definite.
pub(crate) fn classify(context: impl std::fmt::Display, e: tokio_postgres::Error) -> ConnectorError {
    let msg = match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{context}: {}", db.message());
            if let Some(d) = db.detail() {
                m.push_str(&format!(" ({d})"));
            }
            if let Some(w) = db.where_() {
                m.push_str(&format!(" [{}]", w.lines().next().unwrap_or_default()));
            }
            m
        }
        None => format!("{context}: {e}"),
    };
    let transient = match e.code() {
        Some(c) => {
            let c = c.code();
            c.starts_with("08") || c.starts_with("40") || c.starts_with("53") || c.starts_with("57")
        }
        None => true,
    };
    if transient {
        ConnectorError::Transient(msg)
    } else {
        ConnectorError::Definite(msg)
    }
}
