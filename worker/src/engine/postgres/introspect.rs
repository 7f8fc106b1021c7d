//! Reads the source catalog for the selected tables: columns and types,
//! primary keys, partitions, indexes, constraints, owned sequences, the
//! user-defined types they use, size estimates, and a sorted key sample for
//! tables large enough to be cut into segments.

use super::{classify, connect};
use crate::engine::ConnectorError;
use ferry_common::endpoint::Endpoint;
use ferry_common::mapping::TableMappings;
use ferry_common::schema::*;
use ferry_common::work::TableRef;
use tokio_postgres::Client;

const SAMPLE_PER_SEGMENT: u64 = 16;

/// The tables `mappings` selects, as (oid, schema, name): ordinary and
/// partitioned tables that are not partitions, outside the system schemas,
/// Ferry's own and extensions'.
pub(crate) async fn selected_tables(
    c: &Client,
    mappings: &TableMappings,
) -> Result<Vec<(u32, String, String)>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r','p') AND NOT c.relispartition
                AND n.nspname NOT IN ('pg_catalog','information_schema','ferry')
                AND n.nspname NOT LIKE 'pg\\_%'
                AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
              ORDER BY 2, 3",
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .filter(|(_, schema, name): &(u32, String, String)| mappings.selects(schema, name))
        .collect())
}

pub async fn introspect(
    ep: &Endpoint,
    mappings: &TableMappings,
    segment_target_bytes: u64,
    max_segments: u32,
    only: Option<&TableRef>,
) -> Result<SourceSchema, ConnectorError> {
    let c = connect(ep).await?;
    let q = |e| classify(format!("introspecting {ep}"), e);
    let mut out = SourceSchema::default();
    let mut type_oids: Vec<u32> = Vec::new();
    for (oid, schema, name) in selected_tables(&c, mappings).await.map_err(q)? {
        if only.is_some_and(|o| !o.is(&schema, &name)) {
            continue;
        }
        let t = table(
            &c,
            oid,
            &schema,
            &name,
            segment_target_bytes,
            max_segments,
            &mut type_oids,
        )
        .await
        .map_err(|e| classify(format!("introspecting table {schema}.{name}"), e))?;
        if !out.schemas.contains(&schema) {
            out.schemas.push(schema.clone());
        }
        out.tables.push(t);
    }
    // User types in creation (oid) order, so a domain over an enum follows it.
    type_oids.sort();
    type_oids.dedup();
    for oid in type_oids {
        let r = c
            .query_one(
                "SELECT n.nspname::text, t.typname::text, t.typtype::text,
                        format_type(t.typbasetype, t.typtypmod), t.typnotnull,
                        pg_get_expr(t.typdefaultbin, 0),
                        (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid),
                        (SELECT string_agg(' CONSTRAINT ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid), '' ORDER BY k.conname) FROM pg_constraint k WHERE k.contypid = t.oid)
                   FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = $1",
                &[&oid],
            )
            .await
            .map_err(q)?;
        let (schema, name, kind): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let qn = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
        let ddl = if kind == "e" {
            format!(
                "CREATE TYPE {qn} AS ENUM ({})",
                r.get::<_, Option<String>>(6).unwrap_or_default()
            )
        } else {
            domain_ddl(
                &qn,
                &r.get::<_, String>(3),
                r.get(5),
                r.get(4),
                &r.get::<_, Option<String>>(7).unwrap_or_default(),
            )
        };
        if !out.schemas.contains(&schema) {
            out.schemas.push(schema.clone());
        }
        out.types.push(TypeDef { schema, name, ddl });
    }
    Ok(out)
}

/// `CREATE DOMAIN` from the catalog's parts (`constraints`: the
/// ` CONSTRAINT name CHECK (...)` clauses, concatenated).
pub(super) fn domain_ddl(qn: &str, base: &str, default: Option<String>, not_null: bool, constraints: &str) -> String {
    let mut d = format!("CREATE DOMAIN {qn} AS {base}");
    if let Some(def) = default {
        d.push_str(&format!(" DEFAULT {def}"));
    }
    if not_null {
        d.push_str(" NOT NULL");
    }
    d.push_str(constraints);
    d
}

async fn table(
    c: &Client,
    oid: u32,
    schema: &str,
    name: &str,
    segment_target_bytes: u64,
    max_segments: u32,
    type_oids: &mut Vec<u32>,
) -> Result<TableSchema, tokio_postgres::Error> {
    let cols = c
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                    pg_get_expr(d.adbin, d.adrelid), NULLIF(a.attidentity, '')::text, NULLIF(a.attgenerated, '')::text,
                    t.oid, t.typtype::text, et.oid, et.typtype::text,
                    CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0
                         THEN (SELECT quote_ident(nspname) || '.' || quote_ident(collname) FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END
               FROM pg_attribute a
               JOIN pg_type t ON t.oid = a.atttypid
               LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    let mut columns = Vec::new();
    let mut copy_format = CopyFormat::Binary;
    for r in &cols {
        let generated: Option<String> = r.get(5);
        let default: Option<String> = r.get(3);
        let (toid, ttype): (u32, String) = (r.get(6), r.get(7));
        let (eoid, etype): (Option<u32>, Option<String>) = (r.get(8), r.get(9));
        for (o, k) in [(Some(toid), Some(ttype.clone())), (eoid, etype.clone())] {
            if let (Some(o), Some(k)) = (o, k) {
                if k == "e" || k == "d" {
                    type_oids.push(o);
                }
            }
        }
        // Binary arrays embed their element type's OID, which differs between
        // databases for user-defined types; composites embed field OIDs.
        if eoid.is_some_and(|o| o >= 16384) || ttype == "c" || etype.as_deref() == Some("c") {
            copy_format = CopyFormat::Text;
        }
        columns.push(Column {
            name: r.get(0),
            type_sql: r.get(1),
            not_null: r.get(2),
            default: if generated.is_some() { None } else { default.clone() },
            identity: r.get(4),
            generated: generated.and(default),
            collation: r.get(10),
        });
    }
    let pk = c
        .query_opt(
            "SELECT k.conname::text, array_agg(a.attname::text ORDER BY u.ord)
               FROM pg_constraint k, unnest(k.conkey) WITH ORDINALITY u(attnum, ord), pg_attribute a
              WHERE k.conrelid = $1 AND k.contype = 'p' AND a.attrelid = k.conrelid AND a.attnum = u.attnum
              GROUP BY k.conname",
            &[&oid],
        )
        .await?
        .map(|r| PrimaryKey {
            name: r.get(0),
            columns: r.get(1),
        });
    let partition_key: Option<String> = c
        .query_one(
            "SELECT CASE WHEN relkind = 'p' THEN pg_get_partkeydef(oid) END FROM pg_class WHERE oid = $1",
            &[&oid],
        )
        .await?
        .get(0);
    let partitions = c
        .query(
            "WITH RECURSIVE tree AS (
                SELECT inhrelid AS oid, inhparent AS parent, 1 AS level FROM pg_inherits WHERE inhparent = $1
                UNION ALL SELECT i.inhrelid, i.inhparent, t.level + 1 FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid)
             SELECT n.nspname::text, c.relname::text, pn.nspname::text, p.relname::text,
                    pg_get_expr(c.relpartbound, c.oid),
                    CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END
               FROM tree t JOIN pg_class c ON c.oid = t.oid JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_class p ON p.oid = t.parent JOIN pg_namespace pn ON pn.oid = p.relnamespace
              WHERE c.relispartition
              ORDER BY t.level, c.relname",
            &[&oid],
        )
        .await?
        .iter()
        .map(|r| Partition {
            schema: r.get(0),
            name: r.get(1),
            parent_schema: r.get(2),
            parent_name: r.get(3),
            bound: r.get(4),
            partition_key: r.get(5),
        })
        .collect();
    let indexes = c
        .query(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
              WHERE i.indrelid = $1 AND NOT i.indisprimary
                AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
              ORDER BY i.indexrelid",
            &[&oid],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let constraints = c
        .query(
            "SELECT conname::text, contype::text, pg_get_constraintdef(oid) FROM pg_constraint
              WHERE conrelid = $1 AND contype IN ('u','c','x','f') AND conislocal ORDER BY contype, conname",
            &[&oid],
        )
        .await?
        .iter()
        .map(|r| Constraint {
            name: r.get(0),
            kind: match r.get::<_, String>(1).as_str() {
                "u" => ConstraintKind::Unique,
                "c" => ConstraintKind::Check,
                "x" => ConstraintKind::Exclusion,
                _ => ConstraintKind::ForeignKey,
            },
            definition: r.get(2),
        })
        .collect();
    let sequences = c
        .query(
            "SELECT DISTINCT ON (s.oid, a.attnum) n.nspname::text, s.relname::text, a.attname::text, d.deptype = 'i',
                    format('AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s%s',
                           format_type(q.seqtypid, NULL), q.seqincrement, q.seqmin, q.seqmax, q.seqstart, q.seqcache,
                           CASE WHEN q.seqcycle THEN ' CYCLE' ELSE '' END),
                    d.owned
               FROM (
                    -- Sequences owned by a column (serial, identity).
                    SELECT objid AS seq, refobjsubid AS attnum, deptype, true AS owned FROM pg_depend
                     WHERE refobjid = $1 AND classid = 'pg_class'::regclass AND deptype IN ('a','i')
                    UNION ALL
                    -- Sequences a column default calls (nextval) without owning them.
                    SELECT dd.refobjid, ad.adnum, 'n', false FROM pg_attrdef ad
                      JOIN pg_depend dd ON dd.classid = 'pg_attrdef'::regclass AND dd.objid = ad.oid
                                       AND dd.refclassid = 'pg_class'::regclass
                     WHERE ad.adrelid = $1) d
               JOIN pg_class s ON s.oid = d.seq AND s.relkind = 'S'
               JOIN pg_namespace n ON n.oid = s.relnamespace JOIN pg_sequence q ON q.seqrelid = s.oid
               JOIN pg_attribute a ON a.attrelid = $1 AND a.attnum = d.attnum
              ORDER BY s.oid, a.attnum, d.owned DESC",
            &[&oid],
        )
        .await?
        .iter()
        .map(|r| Sequence {
            schema: r.get(0),
            name: r.get(1),
            column: r.get(2),
            identity: r.get(3),
            options: r.get(4),
            owned: r.get(5),
        })
        .collect();
    // Sizes over the whole partition tree (pg_partition_tree lists nothing
    // for a plain table, hence the union); pages of the heap itself for CTIDs.
    let r = c
        .query_one(
            "SELECT COALESCE(sum(pg_table_size(p.relid)), 0)::int8,
                    COALESCE(sum(GREATEST(c.reltuples, 0)), 0)::int8,
                    (pg_relation_size($1::oid) / current_setting('block_size')::int)::int8,
                    bool_or(c.reltuples < 0 AND c.relkind = 'r'),
                    has_table_privilege($1::oid, 'SELECT'),
                    COALESCE(bool_and(c.relreplident = 'f') FILTER (WHERE c.relkind = 'r'), false)
               FROM (SELECT $1::oid AS relid UNION SELECT relid FROM pg_partition_tree($1::oid::regclass)) p
               JOIN pg_class c ON c.oid = p.relid",
            &[&oid],
        )
        .await?;
    let size_bytes = r.get::<_, i64>(0) as u64;
    let mut rows_estimate = r.get::<_, i64>(1) as u64;
    let pages = r.get::<_, i64>(2) as u64;
    // The table's own rows, as `own_rows` reads them.
    let qualified = format!(
        "{}{}.{}",
        if partition_key.is_some() { "" } else { "ONLY " },
        quote_ident(schema),
        quote_ident(name)
    );
    let never_analyzed: Option<bool> = r.get(3);
    // A table the user may not read is described all the same (`ferry
    // endpoint test` reports it); its load fails, naming the privilege.
    let readable: bool = r.get(4);
    // Changes come from the leaf tables: each must log whole old rows.
    let whole_old_image: bool = r.get(5);
    if never_analyzed.unwrap_or(false) && readable {
        rows_estimate = c
            .query_one(&format!("SELECT count(*) FROM {qualified}"), &[])
            .await?
            .get::<_, i64>(0) as u64;
    }
    let mut key_samples = Vec::new();
    if let Some(pk) = &pk {
        if size_bytes > segment_target_bytes && rows_estimate > 0 {
            let segments = size_bytes.div_ceil(segment_target_bytes).min(max_segments as u64);
            let want = (segments * SAMPLE_PER_SEGMENT).max(256);
            // Block sampling returns whole pages of adjacent keys, so the
            // sample must span `want` pages, not `want` rows: a few dense
            // clusters would put most of the table in a few segments.
            // Partitioned parents have no pages of their own: row sampling.
            let method = if pages > 0 {
                format!("SYSTEM ({})", (want as f64 * 100.0 / pages as f64).min(100.0))
            } else {
                format!(
                    "BERNOULLI ({})",
                    (want as f64 * 100.0 / rows_estimate as f64).min(100.0)
                )
            };
            let cols: Vec<String> = pk.columns.iter().map(|c| format!("{}::text", quote_ident(c))).collect();
            let order: Vec<String> = pk.columns.iter().map(|c| quote_ident(c)).collect();
            let sql = format!(
                "SELECT ARRAY[{}] FROM {qualified} TABLESAMPLE {method} ORDER BY {}",
                cols.join(", "),
                order.join(", ")
            );
            let all: Vec<Vec<String>> = c
                .query(&sql, &[])
                .await?
                .iter()
                .map(|r| r.get::<_, Vec<String>>(0))
                .collect();
            // Evenly thinned to `want`: the sample travels through Raft.
            let step = all.len().div_ceil(want as usize).max(1);
            key_samples = all.into_iter().step_by(step).collect();
        }
    }
    Ok(TableSchema {
        engine: ferry_common::endpoint::Engine::Postgres,
        schema: schema.to_string(),
        name: name.to_string(),
        columns,
        primary_key: pk,
        partition_key,
        partitions,
        indexes,
        index_list: vec![],
        constraints,
        sequences,
        rows_estimate,
        size_bytes,
        pages,
        copy_format,
        key_samples,
        filter: None,
        transform: None,
        lob: None,
        whole_old_image,
    })
}
