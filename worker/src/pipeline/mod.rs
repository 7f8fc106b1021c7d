//! The engine-neutral data path: it moves rows in the common value model
//! between engines through the engine boundary (`crate::engine`) and never
//! names an engine itself.
//!
//! - `apply`: change records into a target, exactly once.
//! - `fence`: a segment's rows into a target, exactly once.
//! - `validate`: a segment compared between source and target.

pub mod apply;
pub mod fence;
pub mod validate;
