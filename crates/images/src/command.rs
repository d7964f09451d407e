//! What a container runs: Kubernetes' rule for `command` and `args` applied to the image table.
//!
//! A container's `command` replaces the image's ENTRYPOINT and its `args` replace the image's
//! CMD: with neither, ENTRYPOINT + CMD run; with `args` only, ENTRYPOINT + args; with `command`,
//! command + args (the image's CMD is dropped even when `args` is empty). For the lab images the
//! ENTRYPOINT of a built-in server is `podnet internal image NAME` (so `args` reach the built-in
//! server), the shell images have no ENTRYPOINT and `/bin/sh` as CMD, and a command runs the
//! host's programs, except that a command naming one of the image's own programs
//! ([`Image::programs`], e.g. `nginx -g 'daemon off;'`) runs the built-in one.

use std::path::Path;

use crate::table::{parse_reference, resolve, DefaultCommand, Image};
use crate::Error;

/// The environment variable that carries the container's image reference to a built-in server
/// (nginx serves the welcome page of the tag's version, kubetm/app answers /version with the tag).
pub const IMAGE_ENV: &str = "PODNET_IMAGE";

/// The `reason` of a container waiting because its image is not in the table.
pub const NOT_IN_TABLE_REASON: &str = "ErrImagePull";

fn file_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// The program and arguments a container of `image` runs, by Kubernetes' rule (see the module
/// documentation). `podnet_exe` is the podnet binary that runs built-in servers.
pub fn command_for(image: &Image, podnet_exe: &Path, command: &[String], args: &[String]) -> Vec<String> {
    let exe = podnet_exe.to_string_lossy().into_owned();
    let entrypoint: Vec<String> = match image.default_command {
        DefaultCommand::Builtin => vec![exe, "internal".into(), "image".into(), image.name.into()],
        DefaultCommand::Podnet => vec![exe],
        DefaultCommand::Host(_) => Vec::new(),
    };
    if let Some(first) = command.first() {
        let own = !entrypoint.is_empty() && image.programs.iter().any(|p| *p == file_name(first));
        let mut argv = if own {
            let mut v = entrypoint;
            v.extend(command[1..].iter().cloned());
            v
        } else {
            command.to_vec()
        };
        argv.extend(args.iter().cloned());
        return argv;
    }
    let mut argv = entrypoint;
    if args.is_empty() {
        if let DefaultCommand::Host(cmd) = image.default_command {
            argv.extend(cmd.iter().map(|s| s.to_string()));
        }
    } else {
        argv.extend(args.iter().cloned());
    }
    argv
}

/// How to start a container: the program with its arguments and the environment to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The table entry, `None` for an image outside the table run through its command.
    pub image: Option<&'static Image>,
    /// The program (first) and its arguments.
    pub argv: Vec<String>,
    /// Variables to add to the container's environment (before the container's own `env`, which
    /// may override them).
    pub env: Vec<(String, String)>,
}

/// Resolves a container's image and applies [`command_for`]. An image outside the table runs
/// its `command` (plus `args`) as host programs; without a `command` it cannot run:
/// [`Error::NotInTable`], whose message names the table (the container waits with reason
/// [`NOT_IN_TABLE_REASON`]).
pub fn launch(reference: &str, podnet_exe: &Path, command: &[String], args: &[String]) -> Result<Launch, Error> {
    match resolve(reference) {
        Some(image) => {
            let argv = command_for(image, podnet_exe, command, args);
            let env = match image.default_command {
                DefaultCommand::Host(_) => Vec::new(),
                _ => vec![(IMAGE_ENV.to_string(), reference.trim().to_string())],
            };
            Ok(Launch { image: Some(image), argv, env })
        }
        None if !command.is_empty() => {
            let mut argv = command.to_vec();
            argv.extend(args.iter().cloned());
            Ok(Launch { image: None, argv, env: Vec::new() })
        }
        None => Err(Error::NotInTable { reference: reference.to_string() }),
    }
}

/// The tag of a reference, if any (`kubetm/app:v2` → `v2`).
pub(crate) fn tag_of(reference: &str) -> Option<String> {
    parse_reference(reference).tag.filter(|t| !t.is_empty())
}

/// Expands `$(VAR)` in a container's `command` or `args` as the kubelet does: a defined
/// variable is replaced by its value, an undefined one stays as written, `$$` is a `$`, and any
/// other `$` is kept.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.extend_from_slice(&bytes[checkpoint..cursor]);
            let rest = &bytes[cursor + 1..];
            let advance = match rest[0] {
                b'$' => {
                    out.push(b'$');
                    1
                }
                b'(' => match rest.iter().position(|&b| b == b')') {
                    Some(close) => {
                        let name = String::from_utf8_lossy(&rest[1..close]);
                        match lookup(&name) {
                            Some(value) => out.extend_from_slice(value.as_bytes()),
                            None => out.extend_from_slice(&bytes[cursor..cursor + close + 2]),
                        }
                        close + 1
                    }
                    None => {
                        out.extend_from_slice(b"$(");
                        1
                    }
                },
                other => {
                    out.push(b'$');
                    out.push(other);
                    1
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.extend_from_slice(&bytes[checkpoint.min(bytes.len())..]);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::by_name;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const EXE: &str = "/usr/local/bin/podnet";

    fn run(reference: &str, command: &[&str], args: &[&str]) -> Vec<String> {
        launch(reference, Path::new(EXE), &s(command), &s(args)).expect("launches").argv
    }

    #[test]
    fn a_builtin_server_runs_with_its_args() {
        assert_eq!(run("nginx", &[], &[]), s(&[EXE, "internal", "image", "nginx"]));
        assert_eq!(
            run("kubetm/app:v2", &[], &["--listen", ":9000"]),
            s(&[EXE, "internal", "image", "app", "--listen", ":9000"])
        );
    }

    #[test]
    fn a_command_replaces_the_entrypoint() {
        assert_eq!(run("nginx", &["sh", "-c", "sleep 1"], &[]), s(&["sh", "-c", "sleep 1"]));
        assert_eq!(run("kubetm/init", &["sleep"], &["3600"]), s(&["sleep", "3600"]));
        assert_eq!(run("wbitt/network-multitool", &["sleep", "infinity"], &[]), s(&["sleep", "infinity"]));
    }

    #[test]
    fn a_command_naming_the_images_own_program_runs_the_builtin() {
        assert_eq!(
            run("nginx:1.25", &["nginx", "-g", "daemon off;"], &[]),
            s(&[EXE, "internal", "image", "nginx", "-g", "daemon off;"])
        );
        assert_eq!(
            run("nginx", &["/usr/sbin/nginx"], &["-g", "x"]),
            s(&[EXE, "internal", "image", "nginx", "-g", "x"])
        );
        assert_eq!(run("podnet", &["/podnet", "controllers"], &[]), s(&[EXE, "controllers"]));
        assert_eq!(run("podnet", &[], &["controllers"]), s(&[EXE, "controllers"]));
    }

    #[test]
    fn shell_images_run_sh_or_their_args() {
        assert_eq!(run("busybox", &[], &[]), s(&["/bin/sh"]));
        assert_eq!(run("centos:7", &["/bin/bash"], &[]), s(&["/bin/bash"]));
        assert_eq!(run("busybox", &[], &["sleep", "3600"]), s(&["sleep", "3600"]));
        assert_eq!(
            run("busybox", &["nslookup", "nginx-service.apps.svc.cluster.local"], &[]),
            s(&["nslookup", "nginx-service.apps.svc.cluster.local"])
        );
        assert_eq!(
            run("ghcr.io/c1t1d0s7/network-multitool", &["sh", "-c"], &["curl -s 10.0.0.1"]),
            s(&["sh", "-c", "curl -s 10.0.0.1"])
        );
    }

    #[test]
    fn command_for_applies_the_rule_to_a_table_entry() {
        let shell = by_name("shell").expect("shell");
        assert_eq!(command_for(shell, Path::new(EXE), &[], &[]), s(&["/bin/sh"]));
        let echo = by_name("echo").expect("echo");
        assert_eq!(command_for(echo, Path::new("/p"), &[], &s(&["-x"])), s(&["/p", "internal", "image", "echo", "-x"]));
    }

    #[test]
    fn builtin_servers_learn_their_reference() {
        let l = launch("kubetm/app:v2", Path::new(EXE), &[], &[]).expect("launches");
        assert_eq!(l.env, vec![(IMAGE_ENV.to_string(), "kubetm/app:v2".to_string())]);
        assert_eq!(l.image.map(|i| i.name), Some("app"));
        let l = launch("busybox", Path::new(EXE), &[], &[]).expect("launches");
        assert!(l.env.is_empty());
    }

    #[test]
    fn unknown_images_need_a_command() {
        let l = launch("foo/bar:1", Path::new(EXE), &s(&["sleep"]), &s(&["5"])).expect("a command runs");
        assert_eq!((l.image, l.argv), (None, s(&["sleep", "5"])));
        for args in [&[][..], &["x"][..]] {
            let e = launch("foo/bar", Path::new(EXE), &[], &s(args)).expect_err("no command");
            assert!(matches!(&e, Error::NotInTable { reference } if reference == "foo/bar"));
            assert!(e.to_string().contains("podnet's lab image table"), "{e}");
        }
    }

    #[test]
    fn tags_are_read_from_references() {
        assert_eq!(tag_of("kubetm/app:v2").as_deref(), Some("v2"));
        assert_eq!(tag_of("localhost:5000/app"), None);
        assert_eq!(tag_of("nginx:1.14@sha256:00").as_deref(), Some("1.14"));
    }

    #[test]
    fn variables_expand_like_the_kubelet() {
        let env = |name: &str| match name {
            "POD_NAME" => Some("web-1".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        for (input, want) in [
            ("$(POD_NAME)", "web-1"),
            ("hello $(POD_NAME)!", "hello web-1!"),
            ("$(MISSING)", "$(MISSING)"),
            ("$$(POD_NAME)", "$(POD_NAME)"),
            ("$$$(POD_NAME)", "$web-1"),
            ("a$(EMPTY)b", "ab"),
            ("$", "$"),
            ("$x", "$x"),
            ("$(unclosed", "$(unclosed"),
            ("100$", "100$"),
            ("$$", "$"),
            ("é$(POD_NAME)é", "éweb-1é"),
            ("$é", "$é"),
            ("", ""),
        ] {
            assert_eq!(expand(input, env), want, "{input:?}");
        }
    }
}
