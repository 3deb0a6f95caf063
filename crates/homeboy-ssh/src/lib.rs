//! SSH sessions to configured servers (`servers/<id>.json`), run through the system's OpenSSH client.
//!
//! [`Ssh`] builds every ssh command line from a [`Server`](homeboy_config::servers::Server) ([`command`]):
//! port, user, identity file, agent forwarding and, for `auth.mode = key_plus_password_controlmaster`, the
//! control path. [`session`] starts, checks and stops the control master of a managed session (the password
//! prompt belongs to the terminal; homeboy never stores a password), and [`forward`] opens the local forward
//! of `homeboy runner connect`, refusing any non-loopback daemon address. Host keys, agents and config files
//! stay ssh's business. [`keychain`] keeps SSH key passphrases in the OS keychain (`homeboy server
//! passphrase`), and [`askpass`] hands them to ssh non-interactively: homeboy is its own `SSH_ASKPASS`.

pub mod askpass;
pub mod command;
mod error;
pub mod forward;
pub mod keychain;
pub mod session;

pub use command::{SSH_CONFIG_ENV, Ssh};
pub use error::SshError;
pub use forward::{LocalForward, LoopbackAddr, RunnerConnect};
pub use session::{ConnectOutcome, DisconnectOutcome, SessionStatus};
