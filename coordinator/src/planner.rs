//! Cuts a table into segments from its introspection.
//!
//! - A user's DMS `parallel-load` `ranges` rule wins: its n boundaries make
//!   n + 1 segments over its columns.
//! - Tables at most `segment_target_bytes` large load as one segment, and so
//!   do tables up to `split_tables_larger_than` when `whole` (a full load
//!   into tables it creates on PostgreSQL: one frozen COPY beats parallel
//!   range copies there, which contend on the relation's extension lock and
//!   read the source by index; see docs/benchmarks.md).
//! - Larger tables with a primary key: boundaries are quantiles of the
//!   sorted key sample the worker took, so segments hold about equal rows.
//! - Larger tables without a key: CTID block ranges of equal page counts.
//! - Partitioned tables without a key load as one segment (CTIDs are per
//!   partition).
//! - Tables above `split_tables_larger_than` with a key are cut into block
//!   ranges too when the task says `SplitLargeTablesBy: block`, the source
//!   has blocks (PostgreSQL), and nothing needs key ranges: validation
//!   compares key ranges, and a target that may hold rows of its own
//!   (DO_NOTHING) has them replaced key range by key range. The task then
//!   reads every segment in one exported snapshot (`Task::needs_load_snapshot`).

use ferry_common::mapping::TableMappings;
use ferry_common::plan::{KeyColumn, SegmentBounds};
use ferry_common::schema::TableSchema;
use ferry_common::settings::{SplitBy, TargetTablePrepMode, TaskSettings};

pub fn plan_table(
    t: &TableSchema,
    m: &TableMappings,
    s: &TaskSettings,
    whole: bool,
) -> Result<Vec<SegmentBounds>, String> {
    if let Some(r) = m.ranges_for(&t.schema, &t.name) {
        let mut columns = Vec::new();
        for c in &r.columns {
            let col = t
                .column(c)
                .ok_or_else(|| format!("rule {}: parallel-load column '{c}' does not exist", r.rule_id))?;
            columns.push(KeyColumn {
                name: col.name.clone(),
                type_sql: col.type_sql.clone(),
                nullable: !col.not_null,
            });
        }
        return Ok(key_ranges(columns, r.boundaries.clone()));
    }
    if m.parallel_disabled(&t.schema, &t.name)
        || t.size_bytes <= s.segment_target_bytes
        || whole && t.size_bytes <= s.split_tables_larger_than
    {
        return Ok(vec![SegmentBounds::All]);
    }
    let wanted = t
        .size_bytes
        .div_ceil(s.segment_target_bytes)
        .clamp(1, s.max_segments_per_table as u64) as usize;
    let blocks = t.pages >= 2 && !t.is_partitioned();
    let by_block = blocks
        && s.split_large_tables_by == SplitBy::Block
        && t.size_bytes > s.split_tables_larger_than
        && !s.validation.enabled
        && s.prep_mode != TargetTablePrepMode::DoNothing;
    if let Some(pk) = t.primary_key.as_ref().filter(|_| !by_block) {
        let samples = &t.key_samples;
        if samples.len() < 2 || wanted < 2 {
            return Ok(vec![SegmentBounds::All]);
        }
        let mut bounds: Vec<Vec<String>> = Vec::new();
        for i in 1..wanted {
            let b = samples[i * samples.len() / wanted].clone();
            if bounds.last() != Some(&b) {
                bounds.push(b);
            }
        }
        let columns = pk
            .columns
            .iter()
            .map(|c| {
                let col = t.column(c).ok_or_else(|| format!("primary key column '{c}' missing"))?;
                Ok(KeyColumn {
                    name: col.name.clone(),
                    type_sql: col.type_sql.clone(),
                    nullable: false,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        return Ok(key_ranges(columns, bounds));
    }
    if !blocks {
        return Ok(vec![SegmentBounds::All]);
    }
    let n = (wanted as u64).min(t.pages);
    Ok((0..n)
        .map(|i| SegmentBounds::Ctid {
            lower_block: (i > 0).then(|| i * t.pages / n),
            upper_block: (i + 1 < n).then(|| (i + 1) * t.pages / n),
        })
        .collect())
}

fn key_ranges(columns: Vec<KeyColumn>, boundaries: Vec<Vec<String>>) -> Vec<SegmentBounds> {
    if boundaries.is_empty() {
        return vec![SegmentBounds::All];
    }
    let mut out = Vec::with_capacity(boundaries.len() + 1);
    let mut lower = None;
    for b in boundaries {
        out.push(SegmentBounds::Key {
            columns: columns.clone(),
            lower: lower.take(),
            upper: Some(b.clone()),
        });
        lower = Some(b);
    }
    out.push(SegmentBounds::Key {
        columns,
        lower,
        upper: None,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_common::schema::{Column, CopyFormat, PrimaryKey};

    fn table(pk: bool, size: u64, samples: usize) -> TableSchema {
        TableSchema {
            engine: Default::default(),
            schema: "s".into(),
            name: "t".into(),
            columns: vec![Column {
                name: "id".into(),
                type_sql: "bigint".into(),
                not_null: true,
                default: None,
                identity: None,
                generated: None,
                collation: None,
            }],
            primary_key: pk.then(|| PrimaryKey {
                name: "t_pkey".into(),
                columns: vec!["id".into()],
            }),
            partition_key: None,
            partitions: vec![],
            indexes: vec![],
            index_list: vec![],
            constraints: vec![],
            sequences: vec![],
            rows_estimate: 1000,
            size_bytes: size,
            pages: 100,
            copy_format: CopyFormat::Binary,
            key_samples: (0..samples).map(|i| vec![(i * 10).to_string()]).collect(),
            filter: None,
            transform: None,
            lob: None,
            whole_old_image: false,
        }
    }

    #[test]
    fn small_table_is_one_segment() {
        let s = TaskSettings::default();
        assert_eq!(
            plan_table(&table(true, 10, 0), &TableMappings::include_all(), &s, false).unwrap(),
            vec![SegmentBounds::All]
        );
    }

    #[test]
    fn keyed_table_uses_sample_quantiles() {
        let s = TaskSettings {
            segment_target_bytes: 100,
            ..Default::default()
        };
        let segs = plan_table(&table(true, 800, 100), &TableMappings::include_all(), &s, false).unwrap();
        assert_eq!(segs.len(), 8);
        // Contiguous: each lower equals the previous upper.
        for w in segs.windows(2) {
            let (SegmentBounds::Key { upper, .. }, SegmentBounds::Key { lower, .. }) = (&w[0], &w[1]) else {
                panic!()
            };
            assert_eq!(upper, lower);
        }
    }

    #[test]
    fn tables_loaded_whole_split_only_above_the_threshold() {
        let mut s = TaskSettings {
            segment_target_bytes: 100,
            ..Default::default()
        };
        let m = TableMappings::include_all();
        assert_eq!(
            plan_table(&table(true, 800, 100), &m, &s, true).unwrap(),
            vec![SegmentBounds::All]
        );
        s.split_tables_larger_than = 799;
        assert_eq!(plan_table(&table(true, 800, 100), &m, &s, true).unwrap().len(), 8);
    }

    #[test]
    fn large_keyed_tables_split_by_block_only_where_nothing_needs_keys() {
        let mut s = TaskSettings {
            segment_target_bytes: 100,
            split_tables_larger_than: 500,
            split_large_tables_by: SplitBy::Block,
            ..Default::default()
        };
        let m = TableMappings::include_all();
        let is_block = |segs: &[SegmentBounds]| segs.iter().all(|b| matches!(b, SegmentBounds::Ctid { .. }));
        let is_key = |segs: &[SegmentBounds]| segs.iter().all(|b| matches!(b, SegmentBounds::Key { .. }));
        let big = table(true, 800, 100);
        let segs = plan_table(&big, &m, &s, false).unwrap();
        assert!(segs.len() == 8 && is_block(&segs), "{segs:?}");
        // At or below the threshold: keys (or whole, when `whole`).
        assert!(is_key(&plan_table(&table(true, 500, 100), &m, &s, false).unwrap()));
        // No blocks on the source (MySQL): keys.
        let mut no_pages = big.clone();
        no_pages.pages = 0;
        assert!(is_key(&plan_table(&no_pages, &m, &s, false).unwrap()));
        s.prep_mode = TargetTablePrepMode::DoNothing;
        assert!(is_key(&plan_table(&big, &m, &s, false).unwrap()));
        s.prep_mode = TargetTablePrepMode::TruncateBeforeLoad;
        s.validation.enabled = true;
        assert!(is_key(&plan_table(&big, &m, &s, false).unwrap()));
        s.validation.enabled = false;
        s.split_large_tables_by = SplitBy::Key;
        assert!(is_key(&plan_table(&big, &m, &s, false).unwrap()));
    }

    #[test]
    fn keyless_table_uses_ctid_blocks() {
        let s = TaskSettings {
            segment_target_bytes: 100,
            ..Default::default()
        };
        let segs = plan_table(&table(false, 400, 0), &TableMappings::include_all(), &s, false).unwrap();
        assert_eq!(segs.len(), 4);
        assert_eq!(
            segs[0],
            SegmentBounds::Ctid {
                lower_block: None,
                upper_block: Some(25)
            }
        );
        assert_eq!(
            segs[3],
            SegmentBounds::Ctid {
                lower_block: Some(75),
                upper_block: None
            }
        );
    }
}
