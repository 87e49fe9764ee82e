//! Command-line flags. Hand-parsed: a dozen flags do not justify an argument-parser dependency
//! in a crate whose build time every test run pays.

use std::path::PathBuf;

/// How concurrent writes to one record are decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Optimistic concurrency: `If-Match` against the record's version, 412 on mismatch.
    Versioned,
    /// Last writer wins, ordered by the client's `Ferry-Changed-At` rather than arrival.
    Lww,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "versioned" => Some(Mode::Versioned),
            "lww" => Some(Mode::Lww),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Versioned => "versioned",
            Mode::Lww => "lww",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// `None` means an in-memory database.
    pub db: Option<PathBuf>,
    pub static_dir: Option<PathBuf>,
    pub pkg_dir: Option<PathBuf>,
    /// Allowed origins; `*` reflects any origin. Empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
    pub mode: Mode,
    pub max_body: usize,
    pub token: Option<String>,
    pub log: bool,
}

pub const USAGE: &str = "\
usage: ferry-server [--port PORT] [--host HOST] [--db FILE | --memory] [--static DIR] [--pkg DIR]
                    [--cors-origin ORIGIN]... [--mode versioned|lww] [--max-body BYTES]
                    [--require-token TOKEN] [--log]";

impl Config {
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Config, String> {
        let mut cfg = Config {
            host: "127.0.0.1".into(),
            port: 8080,
            db: Some(PathBuf::from("ferry.sqlite")),
            static_dir: None,
            pkg_dir: None,
            cors_origins: Vec::new(),
            mode: Mode::Versioned,
            max_body: 1 << 20,
            token: None,
            log: false,
        };
        let mut memory = false;
        let mut db_given = false;
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            // Accept both `--flag value` and `--flag=value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = || -> Result<String, String> {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--port" => {
                    let v = value()?;
                    cfg.port = v.parse().map_err(|_| format!("bad --port {v:?}"))?;
                }
                "--host" => cfg.host = value()?,
                "--db" => {
                    cfg.db = Some(PathBuf::from(value()?));
                    db_given = true;
                }
                "--memory" => memory = true,
                "--static" => cfg.static_dir = Some(PathBuf::from(value()?)),
                "--pkg" => cfg.pkg_dir = Some(PathBuf::from(value()?)),
                "--cors-origin" => {
                    let v = value()?;
                    cfg.cors_origins.extend(
                        v.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty()),
                    );
                }
                "--mode" => {
                    let v = value()?;
                    cfg.mode = Mode::parse(&v).ok_or_else(|| format!("bad --mode {v:?}"))?;
                }
                "--max-body" => {
                    let v = value()?;
                    cfg.max_body = v.parse().map_err(|_| format!("bad --max-body {v:?}"))?;
                }
                "--require-token" => cfg.token = Some(value()?),
                "--log" => cfg.log = true,
                "-h" | "--help" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        if memory && db_given {
            return Err("--db and --memory exclude each other".into());
        }
        if memory {
            cfg.db = None;
        }
        if cfg.pkg_dir.is_none() {
            cfg.pkg_dir = cfg.static_dir.as_ref().map(|d| d.join("..").join("pkg"));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        Config::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_flags() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.db.as_deref(), Some(std::path::Path::new("ferry.sqlite")));
        let c = parse(&["--port=0", "--memory", "--static", "www", "--mode", "lww"]).unwrap();
        assert_eq!(c.port, 0);
        assert!(c.db.is_none());
        assert_eq!(c.mode, Mode::Lww);
        assert_eq!(c.pkg_dir.unwrap(), PathBuf::from("www/../pkg"));
        assert!(parse(&["--db", "x", "--memory"]).is_err());
        assert!(parse(&["--port"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
