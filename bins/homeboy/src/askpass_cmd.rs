//! homeboy started by ssh as its `SSH_ASKPASS` helper: write the answer to stdout (ssh's pipe) and nothing
//! else anywhere. The decision is `homeboy_ssh::askpass::answer`; a failure is one line on stderr that never
//! holds the passphrase, and a non-zero exit, which ssh takes as "no answer".

use std::io::Write;
use std::process::ExitCode;

use homeboy_ssh::askpass::{self, Answer, Question};

pub fn run(question: &Question) -> ExitCode {
    match askpass::answer(question) {
        Ok(Answer::Text(text)) => {
            let mut out = std::io::stdout().lock();
            let written = out
                .write_all(text.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush());
            if written.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok(Answer::Exit(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("homeboy askpass: {e}");
            ExitCode::FAILURE
        }
    }
}
