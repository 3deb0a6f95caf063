//! `homeboy ssh <id> [command...]`: replaces this process with ssh to the configured server, so the exit
//! code, signals and terminal are the remote command's. A managed session's control master is reused when
//! it runs (`homeboy server connect`); otherwise ssh connects directly.

use std::os::unix::process::CommandExt;

use anyhow::Context;
use clap::Args;
use homeboy_config::Paths;
use homeboy_ssh::Ssh;

use crate::server_cmd::load;

#[derive(Args)]
pub struct SshArgs {
    /// Server id
    id: String,
    /// Remote command and its arguments (ssh joins them with spaces for the remote shell, as plain ssh
    /// does); none opens a login shell
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

pub fn run(args: SshArgs) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    let server = load(&paths, &args.id)?;
    let ssh = Ssh::from_env();
    let error = ssh.exec_command(&server, &args.command).exec();
    Err(error).with_context(|| {
        format!(
            "cannot run {} (Debian: apt-get install openssh-client)",
            ssh.program().to_string_lossy()
        )
    })
}
