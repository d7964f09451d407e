//! Checks of what callers pass in: names that become directory names, pod file paths, specs.

use std::path::{Component, Path};

use crate::error::{Error, Result};
use crate::types::{ContainerSpec, SandboxSpec};

/// Checks that a pod file path is absolute, without `..`, and not `/`.
pub(crate) fn validate_path(path: &Path) -> Result<()> {
    let bad = |reason: &str| Err(Error::invalid(format!("pod file path {}", path.display()), reason));
    if !path.is_absolute() {
        return bad("not absolute");
    }
    if path.components().any(|c| matches!(c, Component::CurDir | Component::ParentDir)) {
        return bad("contains . or ..");
    }
    if path.parent().is_none() {
        return bad("is /");
    }
    Ok(())
}

/// Checks that a sandbox id or container name can be a directory name.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::invalid(format!("{what} {name:?}"), reason));
    if name.is_empty() || name.len() > 253 {
        return bad("must be 1 to 253 characters");
    }
    if name.starts_with('.') || name.contains(['/', '\0']) {
        return bad("must not start with . or contain / or NUL");
    }
    Ok(())
}

pub(crate) fn validate_sandbox(spec: &SandboxSpec) -> Result<()> {
    validate_name("sandbox id", &spec.id)?;
    if spec.hostname.is_empty() || spec.hostname.len() > 64 || spec.hostname.contains('\0') {
        return Err(Error::invalid(format!("hostname {:?}", spec.hostname), "must be 1 to 64 characters"));
    }
    if let Some(netns) = &spec.netns {
        if !netns.is_absolute() {
            return Err(Error::invalid(format!("netns {}", netns.display()), "not an absolute path"));
        }
    }
    for (i, file) in spec.files.iter().enumerate() {
        validate_path(&file.path)?;
        if spec.files[..i].iter().any(|f| f.path == file.path) {
            return Err(Error::invalid(format!("pod file path {}", file.path.display()), "given twice"));
        }
        if file.mode > 0o7777 {
            return Err(Error::invalid(format!("mode of {}", file.path.display()), format!("{:o}", file.mode)));
        }
    }
    Ok(())
}

pub(crate) fn validate_container(spec: &ContainerSpec) -> Result<()> {
    validate_name("container name", &spec.name)?;
    let what = || format!("container {}", spec.name);
    if spec.argv.is_empty() || spec.argv[0].is_empty() {
        return Err(Error::invalid(what(), "empty command"));
    }
    if spec.argv.iter().any(|a| a.contains('\0')) {
        return Err(Error::invalid(what(), "NUL in the command"));
    }
    for (k, v) in &spec.env {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(Error::invalid(what(), format!("environment variable {k:?}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PodFile;

    #[test]
    fn validates_paths() {
        validate_path(Path::new("/etc/resolv.conf")).unwrap();
        for bad in ["etc/hosts", "/", "/etc/../x", "/etc/x/.."] {
            assert!(validate_path(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_must_be_path_components() {
        validate_name("x", "3f2a-uid").unwrap();
        for bad in ["", ".", "..", ".hidden", "a/b", "a\0b"] {
            assert!(validate_name("x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn specs_are_checked() {
        let mut s = SandboxSpec {
            id: "u".into(),
            namespace: "default".into(),
            name: "p".into(),
            hostname: "p".into(),
            netns: None,
            files: vec![PodFile { path: "/etc/hosts".into(), contents: vec![], mode: 0o644 }],
        };
        validate_sandbox(&s).unwrap();
        s.files.push(s.files[0].clone());
        assert!(validate_sandbox(&s).is_err());
        s.files.pop();
        s.netns = Some("run/netns/x".into());
        assert!(validate_sandbox(&s).is_err());
        let c = ContainerSpec { name: "c".into(), argv: vec![], env: vec![], working_dir: None };
        assert!(validate_container(&c).is_err());
        let c = ContainerSpec { argv: vec!["sh".into()], env: vec![("A=B".into(), "".into())], ..c };
        assert!(validate_container(&c).is_err());
    }
}
