//! The image table: which programs the image references of pods resolve to.
//!
//! No registry is reachable, so a reference resolves by name only. It is normalised the way
//! container runtimes do it: the registry (`docker.io`, `ghcr.io`, `registry.k8s.io`, any other),
//! Docker Hub's `library/` prefix, the tag and the `@sha256:` digest do not matter; the rest of the
//! path is compared case-insensitively with the references of each [`Image`].

use std::fmt::Write as _;

/// What runs when a container gives no `command` (the image's ENTRYPOINT and CMD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultCommand {
    /// A server built into podnet, run as `podnet internal image NAME ARGS…` (ENTRYPOINT
    /// `[podnet, internal, image, NAME]`, no CMD): a container's `args` become its arguments.
    Builtin,
    /// podnet's own binary (ENTRYPOINT `[podnet]`, no CMD), for podnet's components run as pods.
    Podnet,
    /// A program of the host (CMD, no ENTRYPOINT), as the real image's CMD does with no
    /// arguments: a container's `args` replace it.
    Host(&'static [&'static str]),
}

/// One entry of the image table.
#[derive(Debug, PartialEq, Eq)]
pub struct Image {
    /// The name of the entry; for [`DefaultCommand::Builtin`], the NAME of
    /// `podnet internal image NAME`.
    pub name: &'static str,
    /// The references that resolve to this entry, without tag (any registry prefix is ignored
    /// when matching). The first one is the one shown to users.
    pub references: &'static [&'static str],
    /// What the image does, in one sentence.
    pub description: &'static str,
    /// What runs when the container gives no `command`.
    pub default_command: DefaultCommand,
    /// The TCP ports the default program listens on (documentation: a manifest's
    /// `containerPort` changes nothing, as with the real images).
    pub ports: &'static [u16],
    /// Names of the image's own programs (compared by file name): a `command` starting with one
    /// of them runs the built-in program instead of a host program (e.g. `nginx -g 'daemon off;'`).
    pub programs: &'static [&'static str],
}

const SHELL: &[&str] = &["/bin/sh"];

static TABLE: [Image; 11] = [
    Image {
        name: "nginx",
        references: &["nginx", "nginx/nginx"],
        description: "nginx's welcome page on :80 (the page of the tag's nginx version), \
                      nginx's 404 page elsewhere",
        default_command: DefaultCommand::Builtin,
        ports: &[80],
        programs: &["nginx", "docker-entrypoint.sh"],
    },
    Image {
        name: "go-myweb",
        references: &["ghcr.io/c1t1d0s7/go-myweb"],
        description: "\"Hello World!\" and the hostname on :8080 (env MESSAGE replaces the greeting)",
        default_command: DefaultCommand::Builtin,
        ports: &[8080],
        programs: &[],
    },
    Image {
        name: "p8000",
        references: &["kubetm/p8000", "tmkube/p8000"],
        description: "\"containerPort : 8000\" on :8000",
        default_command: DefaultCommand::Builtin,
        ports: &[8000],
        programs: &[],
    },
    Image {
        name: "p8080",
        references: &["kubetm/p8080", "tmkube/p8080"],
        description: "\"containerPort : 8080\" on :8080",
        default_command: DefaultCommand::Builtin,
        ports: &[8080],
        programs: &[],
    },
    Image {
        name: "app",
        references: &["kubetm/app", "tmkube/app"],
        description: "the kubetm course app on :8080: /hostname, /version (the tag), /health, /status500",
        default_command: DefaultCommand::Builtin,
        ports: &[8080],
        programs: &[],
    },
    Image {
        name: "init",
        references: &["kubetm/init", "tmkube/init"],
        description: "the kubetm course image on :8080, answering as kubetm/app does",
        default_command: DefaultCommand::Builtin,
        ports: &[8080],
        programs: &[],
    },
    Image {
        name: "echo",
        references: &[
            "registry.k8s.io/echoserver",
            "registry.k8s.io/e2e-test-images/echoserver",
            "gcr.io/kubernetes-e2e-test-images/echoserver",
            "registry.k8s.io/ingress-nginx/e2e-test-echo",
            "gcr.io/k8s-staging-ingressconformance/echoserver",
            "registry.k8s.io/gateway-api/echo-basic",
            "gcr.io/k8s-staging-gateway-api/echo-basic",
            "ealen/echo-server",
        ],
        description: "the request as JSON (path, host, method, proto, headers, namespace, ingress, \
                      service, pod, tls) like the Ingress/Gateway conformance echo server; \
                      HTTPS on 8443 with TLS_SERVER_CERT and TLS_SERVER_PRIVKEY",
        default_command: DefaultCommand::Builtin,
        ports: &[80, 3000, 8080],
        programs: &[],
    },
    Image {
        name: "multitool",
        references: &["wbitt/network-multitool", "praqma/network-multitool"],
        description: "network-multitool's web page (hostname, IP) on :80 (env HTTP_PORT); \
                      a command runs the host's tools",
        default_command: DefaultCommand::Builtin,
        ports: &[80],
        programs: &["nginx"],
    },
    Image {
        name: "shell",
        references: &[
            "busybox",
            "alpine",
            "centos",
            "ubuntu",
            "debian",
            "fedora",
            "rockylinux",
            "almalinux",
            "ghcr.io/c1t1d0s7/network-multitool",
            "nicolaka/netshoot",
            "registry.k8s.io/e2e-test-images/jessie-dnsutils",
            "gcr.io/kubernetes-e2e-test-images/dnsutils",
            "tutum/dnsutils",
            "radial/busyboxplus",
        ],
        description: "the host's programs (sh, sleep, nslookup, dig, curl…); with no command, \
                      /bin/sh, which exits at once without a terminal as the real image's shell does",
        default_command: DefaultCommand::Host(SHELL),
        ports: &[],
        programs: &[],
    },
    Image {
        name: "pause",
        references: &["registry.k8s.io/pause", "google_containers/pause", "rancher/mirrored-pause"],
        description: "does nothing until SIGTERM or SIGINT, then exits 0",
        default_command: DefaultCommand::Builtin,
        ports: &[],
        programs: &["pause"],
    },
    Image {
        name: "podnet",
        references: &["podnet", "podnet/podnet"],
        description: "podnet's own binary, for podnet's components run as pods (e.g. `args: [controllers]`)",
        default_command: DefaultCommand::Podnet,
        ports: &[],
        programs: &["podnet"],
    },
];

/// The whole image table.
pub fn table() -> &'static [Image] {
    &TABLE
}

/// The entry a built-in server name (`podnet internal image NAME`) or table name refers to.
pub fn by_name(name: &str) -> Option<&'static Image> {
    TABLE.iter().find(|i| i.name == name)
}

/// An image reference split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry host (`docker.io`, `ghcr.io`, `localhost:5000`…), when the reference names one.
    pub registry: Option<String>,
    /// The repository path, as written (e.g. `library/nginx`, `c1t1d0s7/go-myweb`).
    pub path: String,
    /// The tag, when given.
    pub tag: Option<String>,
    /// The digest (`sha256:…`), when given.
    pub digest: Option<String>,
}

impl Reference {
    /// The path compared with the table: lower case, without Docker Hub's `library/` prefix
    /// (nor ECR Public's `docker/library/`).
    pub fn key(&self) -> String {
        let path = self.path.to_ascii_lowercase();
        let path = path.strip_prefix("docker/library/").or_else(|| path.strip_prefix("library/")).unwrap_or(&path);
        path.to_string()
    }
}

/// Splits a reference as container runtimes do: `[registry/]path[:tag][@digest]`, where the
/// first component is a registry when it contains `.` or `:` or is `localhost`.
pub fn parse_reference(reference: &str) -> Reference {
    let reference = reference.trim();
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) => (r, Some(d.to_string())),
        None => (reference, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(rest[last_slash + i + 1..].to_string())),
        None => (rest, None),
    };
    let (registry, path) = match name.split_once('/') {
        Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (Some(first.to_string()), path.to_string())
        }
        _ => (None, name.to_string()),
    };
    Reference { registry, path, tag, digest }
}

/// The table entry a reference resolves to: `nginx`, `nginx:1.25` and
/// `docker.io/library/nginx:latest` all resolve to nginx.
pub fn resolve(reference: &str) -> Option<&'static Image> {
    let key = parse_reference(reference).key();
    if key.is_empty() {
        return None;
    }
    TABLE.iter().find(|image| image.references.iter().any(|r| parse_reference(r).key() == key))
}

/// The message for a container whose image is not in the table and that gives no command.
pub fn not_in_table_message(reference: &str) -> String {
    let known: Vec<&str> = TABLE.iter().flat_map(|i| i.references.iter().take(1)).copied().collect();
    format!(
        "image {reference:?} is not in podnet's lab image table (known: {}, and the other references of \
         `podnet_images::table_doc`); give the container a command to run a host program",
        known.join(", ")
    )
}

fn default_text(image: &Image) -> String {
    match image.default_command {
        DefaultCommand::Builtin => format!("built-in `podnet internal image {}`", image.name),
        DefaultCommand::Podnet => "the podnet binary".to_string(),
        DefaultCommand::Host(argv) => format!("host program `{}`", argv.join(" ")),
    }
}

/// The image table as a Markdown table (the crate's README holds a copy).
pub fn table_doc() -> String {
    let mut out = String::new();
    out.push_str("| image | references (any registry, tag or digest) | without a `command` | ports | what it does |\n");
    out.push_str("|---|---|---|---|---|\n");
    for image in &TABLE {
        let refs: Vec<String> = image.references.iter().map(|r| format!("`{r}`")).collect();
        let ports: Vec<String> = image.ports.iter().map(u16::to_string).collect();
        let ports = if ports.is_empty() { "—".to_string() } else { ports.join(", ") };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            image.name,
            refs.join(", "),
            default_text(image),
            ports,
            image.description.replace('|', "\\|")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(reference: &str) -> Option<&'static str> {
        resolve(reference).map(|i| i.name)
    }

    #[test]
    fn references_split_like_container_runtimes() {
        let r = parse_reference("docker.io/library/nginx:1.25@sha256:abcd");
        assert_eq!(r.registry.as_deref(), Some("docker.io"));
        assert_eq!(r.path, "library/nginx");
        assert_eq!(r.tag.as_deref(), Some("1.25"));
        assert_eq!(r.digest.as_deref(), Some("sha256:abcd"));
        let r = parse_reference("localhost:5000/team/app");
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(r.path, "team/app");
        assert_eq!(r.tag, None);
        let r = parse_reference("kubetm/app:v2");
        assert_eq!(r.registry, None);
        assert_eq!((r.path.as_str(), r.tag.as_deref()), ("kubetm/app", Some("v2")));
        let r = parse_reference("localhost/app");
        assert_eq!((r.registry.as_deref(), r.path.as_str()), (Some("localhost"), "app"));
        let r = parse_reference("nginx@sha256:0123");
        assert_eq!((r.path.as_str(), r.tag.as_deref(), r.digest.as_deref()), ("nginx", None, Some("sha256:0123")));
    }

    #[test]
    fn nginx_resolves_from_every_spelling() {
        for r in [
            "nginx",
            "nginx:1.25",
            "nginx:1.14",
            "docker.io/library/nginx:latest",
            "index.docker.io/library/nginx",
            "registry-1.docker.io/library/nginx:alpine",
            "library/nginx",
            "NGINX",
            "nginx@sha256:4c0fdaa8b6341bfdeca5f18f7837462c80cff90527ee35ef185571e1c327beac",
            "nginx:1.25-alpine@sha256:00",
            "public.ecr.aws/nginx/nginx:1.27",
            "public.ecr.aws/docker/library/nginx",
            " nginx ",
        ] {
            assert_eq!(name(r), Some("nginx"), "{r}");
        }
    }

    #[test]
    fn the_seeds_images_resolve() {
        for (r, want) in [
            ("ghcr.io/c1t1d0s7/go-myweb", "go-myweb"),
            ("c1t1d0s7/go-myweb:alpine", "go-myweb"),
            ("ghcr.io/c1t1d0s7/go-myweb:v1", "go-myweb"),
            ("kubetm/p8000", "p8000"),
            ("kubetm/p8080", "p8080"),
            ("kubetm/app", "app"),
            ("kubetm/app:v2", "app"),
            ("tmkube/app:v1", "app"),
            ("kubetm/init", "init"),
            ("busybox", "shell"),
            ("busybox:1.36", "shell"),
            ("centos:7", "shell"),
            ("ubuntu", "shell"),
            ("debian:bookworm", "shell"),
            ("alpine", "shell"),
            ("ghcr.io/c1t1d0s7/network-multitool", "shell"),
            ("nicolaka/netshoot", "shell"),
            ("registry.k8s.io/e2e-test-images/jessie-dnsutils:1.3", "shell"),
            ("praqma/network-multitool", "multitool"),
            ("wbitt/network-multitool:alpine-extra", "multitool"),
            ("k8s.gcr.io/echoserver:1.4", "echo"),
            ("registry.k8s.io/echoserver:1.10", "echo"),
            ("registry.k8s.io/ingress-nginx/e2e-test-echo:v1.0.1", "echo"),
            ("gcr.io/kubernetes-e2e-test-images/echoserver:2.2", "echo"),
            ("gcr.io/k8s-staging-ingressconformance/echoserver:v20210922-cec7cf2", "echo"),
            ("gcr.io/k8s-staging-gateway-api/echo-basic:v20231214", "echo"),
            ("ealen/echo-server", "echo"),
            ("registry.k8s.io/pause:3.9", "pause"),
            ("k8s.gcr.io/pause", "pause"),
            ("podnet", "podnet"),
            ("podnet/podnet:0.1", "podnet"),
        ] {
            assert_eq!(name(r), Some(want), "{r}");
        }
    }

    #[test]
    fn unknown_references_do_not_resolve() {
        for r in ["foo/bar", "nginx/unit", "mynginx", "", ":latest", "kubetm/app2", "bitnami/nginx"] {
            assert_eq!(name(r), None, "{r:?}");
        }
    }

    #[test]
    fn every_name_and_reference_is_unique() {
        let mut names: Vec<_> = TABLE.iter().map(|i| i.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TABLE.len());
        let mut keys: Vec<_> =
            TABLE.iter().flat_map(|i| i.references.iter().map(|r| parse_reference(r).key())).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "two entries share a reference");
        for image in &TABLE {
            for r in image.references {
                assert_eq!(resolve(r).map(|i| i.name), Some(image.name), "{r}");
            }
        }
    }

    #[test]
    fn the_message_names_the_table() {
        let m = not_in_table_message("foo/bar");
        assert!(m.starts_with("image \"foo/bar\" is not in podnet's lab image table (known: nginx, "), "{m}");
        assert!(m.contains("kubetm/app"), "{m}");
        assert!(m.ends_with("give the container a command to run a host program"), "{m}");
    }

    #[test]
    fn the_doc_lists_every_image() {
        let doc = table_doc();
        for image in &TABLE {
            assert!(doc.contains(&format!("| {} |", image.name)), "{}", image.name);
        }
        assert_eq!(doc.lines().count(), TABLE.len() + 2);
    }
}
