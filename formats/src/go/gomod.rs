//! `go.mod` (only what the proxy protocol needs: the `module` path and the
//! `require` directives) and `go.sum` lines.

use super::{check_path, check_version};
use thiserror::Error;

/// Why a `go.mod` is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GoModError {
    /// A line that is not a directive of the `go.mod` grammar, or a
    /// requirement whose path or version is not one.
    #[error("go.mod line {line}: {reason}")]
    Malformed {
        /// 1-based.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// No `module` directive.
    #[error("go.mod has no module directive")]
    NoModule,
    /// Its `module` is not the module it was fetched as.
    #[error("go.mod declares module {declared:?}, not {expected:?}")]
    WrongModule {
        /// What it says.
        declared: String,
        /// What was asked for.
        expected: String,
    },
}

/// A `require` of a `go.mod`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Requirement {
    /// The module path.
    pub path: String,
    /// The exact version required.
    pub version: String,
}

/// What a `go.mod` says that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoMod {
    /// The `module` path.
    pub module: String,
    /// Every `require`, in file order.
    pub requires: Vec<Requirement>,
}

/// The tokens of one line, comments dropped; quoted strings (`"…"`, `` `…` ``)
/// unquoted.
fn tokens(line: &str, n: usize) -> Result<Vec<String>, GoModError> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '/' {
            chars.next();
            if chars.peek() == Some(&'/') {
                break;
            }
            let mut t = String::from('/');
            while let Some(&c) = chars.peek().filter(|c| !c.is_whitespace()) {
                t.push(c);
                chars.next();
            }
            out.push(t);
        } else if c == '"' || c == '`' {
            chars.next();
            let mut t = String::new();
            loop {
                match chars.next() {
                    Some(q) if q == c => break,
                    Some('\\') if c == '"' => t.extend(chars.next()),
                    Some(x) => t.push(x),
                    None => {
                        return Err(GoModError::Malformed {
                            line: n,
                            reason: "an unterminated quoted string".into(),
                        })
                    }
                }
            }
            out.push(t);
        } else {
            let mut t = String::new();
            while let Some(&c) = chars.peek().filter(|c| !c.is_whitespace()) {
                if c == '/' && t.ends_with('/') {
                    t.pop();
                    return Ok(push(out, t));
                }
                t.push(c);
                chars.next();
            }
            out.push(t);
        }
    }
    Ok(out)
}

fn push(mut v: Vec<String>, t: String) -> Vec<String> {
    if !t.is_empty() {
        v.push(t);
    }
    v
}

/// Handles one directive's arguments (`verb` is `require`, `module`, ...).
fn directive(m: &mut GoMod, verb: &str, args: &[String], n: usize) -> Result<(), GoModError> {
    let bad = |reason: String| GoModError::Malformed { line: n, reason };
    match verb {
        "module" => {
            let [path] = args else {
                return Err(bad("module takes one path".into()));
            };
            m.module = path.clone();
        }
        "require" => {
            let [path, version] = args else {
                return Err(bad("require takes a path and a version".into()));
            };
            check_path(path).map_err(|e| bad(e.to_string()))?;
            check_version(version).map_err(|e| bad(e.to_string()))?;
            m.requires.push(Requirement {
                path: path.clone(),
                version: version.clone(),
            });
        }
        "go" | "toolchain" | "godebug" | "exclude" | "replace" | "retract" => {}
        other => return Err(bad(format!("unknown directive {other:?}"))),
    }
    Ok(())
}

impl GoMod {
    /// Parses a `go.mod`; `expected` is the module it was fetched as.
    /// `exclude`, `replace` and `retract` are read past: Go applies them
    /// only in the main module.
    pub fn parse(bytes: &[u8], expected: Option<&str>) -> Result<GoMod, GoModError> {
        let text = std::str::from_utf8(bytes).map_err(|_| GoModError::Malformed {
            line: 0,
            reason: "not UTF-8".into(),
        })?;
        let mut m = GoMod {
            module: String::new(),
            requires: Vec::new(),
        };
        let mut block: Option<String> = None;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let t = tokens(line, n)?;
            let Some(first) = t.first() else { continue };
            if let Some(verb) = &block {
                if first == ")" && t.len() == 1 {
                    block = None;
                } else {
                    directive(&mut m, verb, &t, n)?;
                }
                continue;
            }
            if t.len() == 2 && t[1] == "(" {
                block = Some(first.clone());
                continue;
            }
            directive(&mut m, first, &t[1..], n)?;
        }
        if block.is_some() {
            return Err(GoModError::Malformed {
                line: text.lines().count(),
                reason: "a block without its closing )".into(),
            });
        }
        if m.module.is_empty() {
            return Err(GoModError::NoModule);
        }
        match expected {
            Some(e) if e != m.module => Err(GoModError::WrongModule {
                declared: m.module,
                expected: e.to_string(),
            }),
            _ => Ok(m),
        }
    }
}

/// Why a `go.sum` is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GoSumError {
    /// Not `<module> <version>[/go.mod] h1:<base64>`.
    #[error("go.sum line {line}: {reason}")]
    Malformed {
        /// 1-based.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One `go.sum` line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SumLine {
    /// The module path.
    pub module: String,
    /// The version (without `/go.mod`).
    pub version: String,
    /// Whether the hash is of the `go.mod` alone (`<version>/go.mod`).
    pub go_mod: bool,
    /// `h1:<base64>`.
    pub hash: String,
}

impl SumLine {
    /// The line as `go.sum` writes it.
    pub fn to_line(&self) -> String {
        let suffix = if self.go_mod { "/go.mod" } else { "" };
        format!("{} {}{suffix} {}\n", self.module, self.version, self.hash)
    }
}

/// Parses `go.sum` text (also a checksum database record, which has the
/// same lines).
pub fn parse_gosum(bytes: &[u8]) -> Result<Vec<SumLine>, GoSumError> {
    let text = std::str::from_utf8(bytes).map_err(|_| GoSumError::Malformed {
        line: 0,
        reason: "not UTF-8".into(),
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |reason: String| GoSumError::Malformed {
            line: i + 1,
            reason,
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let [module, version, hash] = f[..] else {
            return Err(bad("not three fields".into()));
        };
        let (version, go_mod) = match version.strip_suffix("/go.mod") {
            Some(v) => (v, true),
            None => (version, false),
        };
        check_path(module).map_err(|e| bad(e.to_string()))?;
        check_version(version).map_err(|e| bad(e.to_string()))?;
        super::hash::check_h1(hash).map_err(|e| bad(e.to_string()))?;
        out.push(SumLine {
            module: module.to_string(),
            version: version.to_string(),
            go_mod,
            hash: hash.to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_go_mod_with_blocks_comments_and_quotes() {
        let text = b"// c\nmodule \"example.com/a\" // the module\n\ngo 1.19\n\nrequire example.com/b v1.0.0\nrequire (\n\texample.com/c v1.2.0 // indirect\n\t`example.com/d` v0.0.0-20240101000000-abcdefabcdef\n)\nreplace example.com/b => ../b\nexclude (\n example.com/c v1.1.0\n)\n";
        let m = GoMod::parse(text, Some("example.com/a")).unwrap();
        assert_eq!(m.module, "example.com/a");
        let r: Vec<_> = m
            .requires
            .iter()
            .map(|r| format!("{}@{}", r.path, r.version))
            .collect();
        assert_eq!(
            r,
            [
                "example.com/b@v1.0.0",
                "example.com/c@v1.2.0",
                "example.com/d@v0.0.0-20240101000000-abcdefabcdef"
            ]
        );
        assert!(matches!(
            GoMod::parse(b"module x.com/y\n", Some("x.com/z")),
            Err(GoModError::WrongModule { .. })
        ));
        assert!(matches!(
            GoMod::parse(b"go 1.19\n", None),
            Err(GoModError::NoModule)
        ));
        assert!(matches!(
            GoMod::parse(b"module x.com/y\nrequire x.com/b 1.0\n", None),
            Err(GoModError::Malformed { line: 2, .. })
        ));
        assert!(matches!(
            GoMod::parse(b"module x.com/y\nrequire (\n", None),
            Err(GoModError::Malformed { .. })
        ));
    }

    #[test]
    fn go_sum_lines() {
        let h = format!("h1:{}", "A".repeat(43) + "=");
        let text = format!("example.com/a v1.0.0 {h}\nexample.com/a v1.0.0/go.mod {h}\n");
        let l = parse_gosum(text.as_bytes()).unwrap();
        assert_eq!(l.len(), 2);
        assert!(l[1].go_mod && !l[0].go_mod);
        assert_eq!(l[1].to_line(), format!("example.com/a v1.0.0/go.mod {h}\n"));
        assert!(parse_gosum(b"example.com/a v1.0.0 h2:xx\n").is_err());
        assert!(parse_gosum(b"example.com/a v1.0.0\n").is_err());
    }
}
