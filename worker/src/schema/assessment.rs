//! What conversion found, object by object: the action items (SCT's
//! vocabulary: severity, effort bucket, recommended action), each object's
//! outcome, and the per-category summary `report.json` carries.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Tables,
    Columns,
    Constraints,
    Indexes,
    Sequences,
    Types,
    Views,
    Triggers,
    Functions,
    Procedures,
}

impl Category {
    pub const ALL: [Category; 10] = [
        Category::Tables,
        Category::Columns,
        Category::Constraints,
        Category::Indexes,
        Category::Sequences,
        Category::Types,
        Category::Views,
        Category::Triggers,
        Category::Functions,
        Category::Procedures,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Category::Tables => "tables",
            Category::Columns => "columns",
            Category::Constraints => "constraints",
            Category::Indexes => "indexes",
            Category::Sequences => "sequences",
            Category::Types => "types",
            Category::Views => "views",
            Category::Triggers => "triggers",
            Category::Functions => "functions",
            Category::Procedures => "procedures",
        }
    }
}

/// Ordered from worst: `--fail-on high` fails on critical and high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
            Severity::Info,
        ]
        .into_iter()
        .find(|v| v.name() == s)
    }

    /// Medium and worse: the object is not (fully) converted until someone acts.
    pub fn needs_action(self) -> bool {
        self <= Severity::Medium
    }
}

/// SCT's effort buckets: simple < 2 h, medium 2–6 h, complex > 6 h.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effort {
    Simple,
    Medium,
    Complex,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionItem {
    /// `CODE/object`: the same finding on the same object keeps its id
    /// from run to run.
    pub id: String,
    pub code: &'static str,
    pub severity: Severity,
    /// None for info and low items that need no work.
    pub effort: Option<Effort>,
    pub category: Category,
    pub object: String,
    pub message: String,
    pub action: String,
    pub source_sql: String,
    pub proposed_sql: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Converted, nothing to review.
    Automatic,
    /// Converted; low or info items say what differs.
    Warnings,
    /// Not (fully) converted: medium or worse items.
    Action,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    pub category: Category,
    pub name: String,
    pub outcome: Outcome,
    /// The worst effort of its items.
    pub effort: Option<Effort>,
    pub action_items: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EffortCounts {
    pub simple: usize,
    pub medium: usize,
    pub complex: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategorySummary {
    pub category: Category,
    pub total: usize,
    pub automatic: usize,
    pub with_warnings: usize,
    pub needs_action: usize,
    /// Objects needing action, by effort.
    pub effort: EffortCounts,
    /// automatic / total, in percent; 100 when empty.
    pub percent_automatic: f64,
    /// (automatic + with_warnings) / total, in percent; 100 when empty.
    pub percent_converted: f64,
}

pub fn summarize(objects: &[ObjectResult]) -> Vec<CategorySummary> {
    Category::ALL
        .iter()
        .map(|&category| {
            let of: Vec<&ObjectResult> = objects.iter().filter(|o| o.category == category).collect();
            let count = |x: Outcome| of.iter().filter(|o| o.outcome == x).count();
            let mut effort = EffortCounts::default();
            for o in of.iter().filter(|o| o.outcome == Outcome::Action) {
                match o.effort {
                    Some(Effort::Complex) => effort.complex += 1,
                    Some(Effort::Medium) => effort.medium += 1,
                    _ => effort.simple += 1,
                }
            }
            let (automatic, with_warnings) = (count(Outcome::Automatic), count(Outcome::Warnings));
            CategorySummary {
                category,
                total: of.len(),
                automatic,
                with_warnings,
                needs_action: count(Outcome::Action),
                effort,
                percent_automatic: percent(automatic, of.len()),
                percent_converted: percent(automatic + with_warnings, of.len()),
            }
        })
        .collect()
}

pub fn percent(part: usize, total: usize) -> f64 {
    if total == 0 {
        100.0
    } else {
        (part as f64 * 1000.0 / total as f64).round() / 10.0
    }
}
