//! The arguments of every `... set <id>` command (the dynamic set contract of `homeboy_config::dynamic_set`):
//! one definition, so `server set` and `tunnel service set` read and order their edits the same way.

use clap::Args;
use homeboy_config::dynamic_set::{self, Edit};

use crate::output::{Format, usage_error};

#[derive(Args)]
pub struct SetArgs {
    /// The id of the declaration to change
    pub id: String,
    /// path=value, e.g. port=2222 or runner.concurrency_limit=4 (dotted path; the value is JSON, else text;
    /// `null` removes a field); repeatable, applied in order after --json
    #[arg(long = "field", value_name = "PATH=VALUE")]
    pub fields: Vec<String>,
    /// A JSON merge patch (RFC 7386), applied first
    #[arg(long, value_name = "PATCH")]
    pub json: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

impl SetArgs {
    /// The requested edits, or exit code 2 with one line.
    pub fn edits(&self) -> anyhow::Result<Vec<Edit>> {
        dynamic_set::edits_from_cli(&self.fields, self.json.as_deref())
            .map_err(|e| usage_error(format!("`{}` {}", e.field, e.problem)))
    }
}
