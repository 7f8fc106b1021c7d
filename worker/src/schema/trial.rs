//! Trying a conversion on a real target (`--target` of `ferry schema
//! convert` and `ferry assess`): an object counts as converted only once its
//! statements ran there. A translation that parses can still fail on the
//! server (a type the expression does not accept, a missing function), and
//! a DDL file that fails at its first bad view would stop a task after every
//! row was loaded.
//!
//! Nothing of the trial stays on the target:
//! - PostgreSQL runs every statement in one transaction, each object in a
//!   savepoint (a failure undoes only that object), and rolls it back.
//! - MySQL commits DDL, so the trial creates only databases that do not
//!   exist on the target yet and drops them afterwards; the objects of a
//!   database that exists there already are not tried (and said so) rather
//!   than touch it.
//!
//! Objects are tried in file order (pre-data, post-data, cutover), so an
//! object sees the ones it depends on — unless those failed, which its own
//! error then shows.

use super::assessment::{ActionItem, Category, Effort, Outcome, Severity};
use super::convert::{Conversion, Ddl};

/// An object whose statements the target refused.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub object: String,
    pub error: String,
    pub sql: String,
}

/// Every DDL of the conversion in the order the files run.
pub(crate) fn in_order(conv: &Conversion) -> impl Iterator<Item = &Ddl> {
    conv.pre_data
        .iter()
        .chain(&conv.post_data)
        .chain(&conv.foreign_keys)
        .chain(&conv.triggers)
}

/// What a trial found.
#[derive(Debug, Default)]
pub struct Trial {
    /// Objects that failed, each with its first error.
    pub refused: Vec<Refusal>,
    /// Objects not tried (MySQL: their database exists on the target).
    pub untried: Vec<String>,
}

pub(crate) fn record(out: &mut Vec<Refusal>, d: &Ddl, error: String) {
    if let Some(r) = out.iter_mut().find(|r| r.object == d.object) {
        r.sql.push('\n');
        r.sql.push_str(&d.sql);
    } else {
        out.push(Refusal {
            object: d.object.clone(),
            error,
            sql: d.sql.clone(),
        });
    }
}

/// Folds the trial into the conversion: each refused object needs action,
/// with the server's error; its statements leave the files (kept as the
/// item's proposed SQL to fix) so that a task running them does not stop
/// there — except a table's, without which nothing could be loaded.
pub fn apply(conv: &mut Conversion, refused: &[Refusal]) {
    for r in refused {
        let category = conv
            .objects
            .iter()
            .find(|o| o.name == r.object)
            .map_or(Category::Tables, |o| o.category);
        let id = format!("APPLY-FAILED/{}", r.object);
        let table = category == Category::Tables;
        conv.items.push(ActionItem {
            id: id.clone(),
            code: "APPLY-FAILED",
            severity: if table { Severity::Critical } else { Severity::High },
            effort: Some(Effort::Medium),
            category,
            object: r.object.clone(),
            message: format!("the converted statements fail on the target: {}", r.error),
            action: if table {
                "Fix the table's statements in pre-data.sql / post-data.sql before any task uses them."
            } else {
                "Fix the proposed statements and add them to post-data.sql (or cutover.sql for triggers)."
            }
            .to_string(),
            source_sql: String::new(),
            proposed_sql: Some(r.sql.clone()),
        });
        for o in conv.objects.iter_mut().filter(|o| o.name == r.object) {
            o.outcome = Outcome::Action;
            o.effort = o.effort.max(Some(Effort::Medium));
            o.action_items.push(id.clone());
        }
        if !table {
            for list in [
                &mut conv.pre_data,
                &mut conv.post_data,
                &mut conv.foreign_keys,
                &mut conv.triggers,
            ] {
                list.retain(|d| d.object != r.object);
            }
        }
    }
}
