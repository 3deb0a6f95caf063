//! `homeboy-ingress`: the VPS side of native public preview. Argument parsing and wiring only; the ingress
//! itself lives in `homeboy-preview`.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "homeboy-ingress",
    version,
    about = "Route public preview hosts to homeboy preview sessions"
)]
struct Cli {}

fn main() {
    Cli::parse();
}
