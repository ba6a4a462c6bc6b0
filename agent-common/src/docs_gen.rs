//! Man pages and shell completions made from an agent's command line, for
//! its Debian package: `ferry-in generate-docs DIR` and `ferry-out
//! generate-docs DIR` (hidden subcommands; `scripts/package.sh` runs them).

use anyhow::{Context, Result};
use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// The shells a package carries completions for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Writes `DIR/man/NAME.1` with a page for every visible subcommand
/// (`NAME-SUB.1`, `NAME-SUB-SUBSUB.1`), and `DIR/completions/` with
/// `NAME.bash`, `_NAME` (zsh) and `NAME.fish`. Returns the files written.
pub fn write(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    let name = cmd.get_name().to_owned();
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    clap_mangen::generate_to(cmd.clone(), &man)
        .with_context(|| format!("cannot write man pages into {}", man.display()))?;
    let mut written = Vec::new();
    for entry in
        std::fs::read_dir(&man).with_context(|| format!("cannot list {}", man.display()))?
    {
        written.push(entry?.path());
    }
    written.sort();
    let mut cmd = cmd;
    for shell in SHELLS {
        let path = clap_complete::generate_to(shell, &mut cmd, &name, &completions).with_context(
            || {
                format!(
                    "cannot write {shell} completions into {}",
                    completions.display()
                )
            },
        )?;
        written.push(path);
    }
    Ok(written)
}

/// `generate-docs DIR`: [`write`], then names each file written on stdout.
pub fn run(cmd: clap::Command, dir: &Path) -> Result<()> {
    for path in write(cmd, dir)? {
        println!("{}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> clap::Command {
        clap::Command::new("demo")
            .version("1.2.3")
            .about("A demo agent.")
            .subcommand(clap::Command::new("serve").about("Serves the stores."))
            .subcommand(clap::Command::new("secret").hide(true))
            .subcommand(
                clap::Command::new("trust")
                    .subcommand(clap::Command::new("add").about("Adds a key.")),
            )
    }

    #[test]
    fn writes_a_page_a_visible_subcommand_and_three_completions() {
        let dir = tempfile::tempdir().unwrap();
        let written = write(sample(), dir.path()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "man/demo-serve.1",
                "man/demo-trust-add.1",
                "man/demo-trust.1",
                "man/demo.1",
                "completions/demo.bash",
                "completions/_demo",
                "completions/demo.fish",
            ]
        );
        let page = std::fs::read_to_string(dir.path().join("man/demo.1")).unwrap();
        assert!(page.contains("serve"), "{page}");
        assert!(
            !page.contains("secret"),
            "a hidden subcommand is documented: {page}"
        );
        let bash = std::fs::read_to_string(dir.path().join("completions/demo.bash")).unwrap();
        assert!(
            bash.contains("complete -F") && bash.contains("serve"),
            "{bash}"
        );
    }

    #[test]
    fn an_unwritable_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        assert!(write(sample(), &file).is_err());
    }
}
