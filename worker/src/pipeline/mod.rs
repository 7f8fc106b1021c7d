//! The engine-neutral data path: it moves rows in the common value model
//! between engines through the engine seams (`crate::engine`) and never
//! names an engine itself.
//!
//! - `work`: one assignment's work, each kind through the seam it needs.
//! - `rows`: the value-model seam between a source's reader and a target's
//!   writer.
//! - `load`: a segment's path from source to target, and a loaded table's
//!   row count check.
//! - `fence`: a segment's rows into a target, exactly once.
//! - `apply`: change records into a target, exactly once.
//! - `conflict`: changes of rows the target lacks, found and recorded.
//! - `stop`: a CDC stream at its stop position.
//! - `validate`: a segment compared between source and target.

pub mod apply;
pub(crate) mod conflict;
pub mod fence;
pub mod load;
pub mod rows;
pub mod stop;
pub mod validate;
pub mod work;
