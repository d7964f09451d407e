# Shared by podnet's scripts: installing what is missing from Debian's packages, and checks.

# ensure_packages PKG...: installs the Debian packages that are not installed yet.
ensure_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing Debian packages: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: root is needed to install ${missing[*]}" >&2
        return 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ensure_rust: cargo must be the rustup toolchain (Debian's cargo is too old for the workspace).
ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found: install the Rust toolchain (rustup) first" >&2; return 1; }
}

# ensure_kubectl: the tests drive the real kubectl.
ensure_kubectl() {
    command -v kubectl >/dev/null 2>&1 && return 0
    ensure_packages kubernetes-client
    command -v kubectl >/dev/null 2>&1 || { echo "error: kubectl not found" >&2; return 1; }
}
