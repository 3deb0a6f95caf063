//! `homeboy completions <shell>`: the scripts are generated from the clap definitions; bash sources the
//! bash one and completes partial words through it, the way it does at a prompt.

use std::process::Command;

use homeboy_e2e::{Bounded, Home, describe};

/// Sources `script` in a clean bash and prints what its completion function offers for each line (one
/// block per line, `--` separated), calling it exactly as bash does: COMP_WORDS, COMP_CWORD, COMP_LINE,
/// COMP_POINT set, and the function named by `complete -p homeboy` called with the command, the current
/// word and the previous word.
fn complete(home: &Home, script: &str, lines: &[&str]) -> Vec<Vec<String>> {
    let path = home.root().join("homeboy.bash");
    std::fs::write(&path, script).unwrap();
    let probe = r#"
source "$1" || { echo "source failed" >&2; exit 3; }
spec=$(complete -p homeboy) || { echo "no completion registered for homeboy" >&2; exit 4; }
func=$(printf '%s\n' "$spec" | sed -n 's/.*-F \([^ ]*\).*/\1/p')
[ -n "$func" ] || { echo "no function in: $spec" >&2; exit 5; }
shift
for line in "$@"; do
    COMP_LINE=$line
    COMP_POINT=${#COMP_LINE}
    read -ra COMP_WORDS <<< "$COMP_LINE"
    [[ "$COMP_LINE" == *' ' ]] && COMP_WORDS+=('')
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    COMPREPLY=()
    "$func" homeboy "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf '%s\n' "${COMPREPLY[@]}"
    echo --
done
"#;
    let out = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", probe, "probe"])
        .arg(&path)
        .args(lines)
        .output_bounded()
        .expect("run bash");
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let blocks: Vec<Vec<String>> = stdout
        .split("--\n")
        .map(|block| {
            block
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .take(lines.len())
        .collect();
    assert_eq!(blocks.len(), lines.len(), "{stdout}");
    blocks
}

#[test]
fn bash_sources_the_script_and_completes_subcommands() {
    let home = Home::new();
    let script = home.homeboy_ok(&["completions", "bash"]);
    assert!(script.contains("homeboy"), "{script}");
    let file = home.root().join("syntax.bash");
    std::fs::write(&file, &script).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output_bounded()
        .unwrap();
    assert!(syntax.status.success(), "{}", describe(&syntax));

    let offered = complete(
        &home,
        &script,
        &[
            "homeboy tunnel serv",
            "homeboy daem",
            "homeboy tunnel service sta",
            "homeboy completions ",
        ],
    );
    assert_eq!(offered[0], ["service"]);
    assert_eq!(offered[1], ["daemon"]);
    assert!(
        offered[2].contains(&"start".to_string()) && offered[2].contains(&"status".to_string()),
        "{:?}",
        offered[2]
    );
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        assert!(
            offered[3].contains(&shell.to_string()),
            "{shell} not offered: {:?}",
            offered[3]
        );
    }
}

#[test]
fn every_shell_gets_a_script_and_unknown_shells_are_refused() {
    let home = Home::new();
    for (shell, marker) in [
        ("zsh", "#compdef homeboy"),
        ("fish", "complete -c homeboy"),
        ("elvish", "edit:completion:arg-completer[homeboy]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = home.homeboy_ok(&["completions", shell]);
        assert!(
            script.contains(marker),
            "{shell}: no {marker:?} in\n{script}"
        );
        assert!(script.contains("tunnel"), "{shell}: subcommands missing");
    }
    let out = home.homeboy(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}
