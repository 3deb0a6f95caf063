//! SSH key passphrases in the OS keychain: the Secret Service on Linux (gnome-keyring, KeePassXC, …, over
//! D-Bus), the macOS Keychain — through the `keyring` crate.
//!
//! One entry per server of one config dir: service `homeboy`, account `ssh-passphrase:<server id>@<config
//! dir>`, so two homeboy homes (or two users of one keychain) never answer for each other. homeboy never
//! writes a passphrase anywhere else, never prints it, and keeps it in memory only as long as it takes to
//! hand it on ([`Zeroizing`] wipes it when dropped).

use std::path::Path;

use zeroize::Zeroizing;

use crate::SshError;

/// The keychain service name of every homeboy entry.
pub const SERVICE: &str = "homeboy";

/// The passphrases of the servers of one config dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keychain {
    config_dir: String,
}

/// Whether a server has a passphrase in the keychain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    Stored,
    NotStored,
}

impl Keychain {
    /// The keychain entries of the servers declared under `config_dir`.
    pub fn for_config_dir(config_dir: &Path) -> Keychain {
        Keychain {
            config_dir: config_dir.display().to_string(),
        }
    }

    fn entry(&self, server_id: &str) -> Result<keyring::Entry, SshError> {
        keyring::Entry::new(
            SERVICE,
            &format!("ssh-passphrase:{server_id}@{}", self.config_dir),
        )
        .map_err(keychain_error)
    }

    /// Stores (or replaces) the passphrase of `server_id`'s key.
    pub fn set(&self, server_id: &str, passphrase: &str) -> Result<(), SshError> {
        self.entry(server_id)?
            .set_password(passphrase)
            .map_err(keychain_error)
    }

    /// The passphrase of `server_id`'s key, if one is stored.
    pub fn get(&self, server_id: &str) -> Result<Option<Zeroizing<String>>, SshError> {
        match self.entry(server_id)?.get_password() {
            Ok(passphrase) => Ok(Some(Zeroizing::new(passphrase))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keychain_error(e)),
        }
    }

    /// Whether a passphrase is stored (the passphrase itself is wiped at once).
    pub fn status(&self, server_id: &str) -> Result<Stored, SshError> {
        Ok(match self.get(server_id)? {
            Some(_) => Stored::Stored,
            None => Stored::NotStored,
        })
    }

    /// Removes the passphrase; false when none was stored.
    pub fn clear(&self, server_id: &str) -> Result<bool, SshError> {
        match self.entry(server_id)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(keychain_error(e)),
        }
    }
}

/// Asks for a new passphrase on the terminal, twice and without echo; refuses an empty one or a mismatch.
pub fn prompt_new(server_id: &str) -> Result<Zeroizing<String>, SshError> {
    let ask = |prompt: String| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| SshError::Prompt(format!("no terminal to ask on ({e}); use --stdin")))
    };
    let first = ask(format!("Passphrase of the SSH key of {server_id}: "))?;
    if first.is_empty() {
        return Err(SshError::Prompt("the passphrase is empty".into()));
    }
    let again = ask("Again: ".to_string())?;
    if *first != *again {
        return Err(SshError::Prompt("the two passphrases differ".into()));
    }
    Ok(first)
}

/// A passphrase from the first line of `input` (without its line ending), for scripts.
pub fn read_line(mut input: impl std::io::BufRead) -> Result<Zeroizing<String>, SshError> {
    let mut line = Zeroizing::new(String::new());
    input
        .read_line(&mut line)
        .map_err(|e| SshError::Prompt(e.to_string()))?;
    let passphrase = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
    if passphrase.is_empty() {
        return Err(SshError::Prompt("the passphrase is empty".into()));
    }
    Ok(passphrase)
}

/// A keychain failure in words that never carry a secret (the crate's errors describe the store, not the
/// value; a value that is not UTF-8 is reported without its bytes).
fn keychain_error(error: keyring::Error) -> SshError {
    let problem = match error {
        keyring::Error::NoStorageAccess(e) => format!("the keychain cannot be reached ({e})"),
        keyring::Error::PlatformFailure(e) => format!("the keychain failed ({e})"),
        keyring::Error::BadEncoding(_) => "the stored passphrase is not UTF-8 text".to_string(),
        keyring::Error::Ambiguous(found) => {
            format!(
                "{} keychain entries match; remove the extra ones",
                found.len()
            )
        }
        other => other.to_string(),
    };
    SshError::Keychain { problem }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_per_server_and_config_dir() {
        let a = Keychain::for_config_dir(Path::new("/home/me/.config/homeboy"));
        let b = Keychain::for_config_dir(Path::new("/tmp/other"));
        assert_ne!(a, b);
        assert!(a.entry("prod").is_ok());
        let err = keychain_error(keyring::Error::BadEncoding(b"s3cret\xff".to_vec()));
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn a_passphrase_is_the_first_line_without_its_ending() {
        let read = |text: &str| read_line(text.as_bytes()).map(|p| p.to_string());
        assert_eq!(read("correct horse\r\nsecond").unwrap(), "correct horse");
        assert_eq!(read(" spaced \n").unwrap(), " spaced ");
        assert!(read("\n").is_err());
        assert!(read("").is_err());
    }
}
