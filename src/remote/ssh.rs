//! SSH transport (russh): resolve where and how to reach a node, check its host key against known_hosts,
//! authenticate with a key file or the agent, optionally through jump hosts, and run scripts on it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{self, HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};
use ssh2_config::{ParseRule, SshConfig};

use crate::converge::{Output, Transport};
use crate::error::HostError;
use crate::model::inventory::{Become, SshSettings};

/// Everything needed to reach one host, after the inventory and ~/.ssh/config are merged.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name used for known_hosts and messages: `HostName` from ~/.ssh/config, else the inventory's host.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub identity_files: Vec<PathBuf>,
    /// Jump hosts, outermost first, each already resolved.
    pub jumps: Vec<Target>,
    /// `ProxyCommand` from ~/.ssh/config, `%h`, `%p`, `%r` and `%n` already substituted (shell-quoted): SSH is
    /// spoken over its stdin and stdout.
    pub proxy_command: Option<String>,
    /// The known_hosts file for this host: the inventory's `ssh.known_hosts`, else ~/.ssh/config's
    /// `UserKnownHostsFile`, else ~/.ssh/known_hosts.
    pub known_hosts: PathBuf,
    pub sudo: bool,
}

/// How host keys are checked. There is no way to switch checking off.
#[derive(Debug, Clone)]
pub struct HostKeyPolicy {
    /// Where each host's key is looked up (the target's own file, see [`Target::known_hosts`]).
    pub known_hosts: PathBuf,
    /// Learn keys of hosts not yet in known_hosts (like OpenSSH's `accept-new`); changed keys are still refused.
    pub accept_new: bool,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(10), command: Duration::from_secs(300) }
    }
}

pub fn expand_home(p: &Path) -> PathBuf {
    match p.to_str().and_then(|s| s.strip_prefix("~/")) {
        Some(rest) => std::env::var_os("HOME").map_or_else(|| p.to_path_buf(), |h| PathBuf::from(h).join(rest)),
        None => p.to_path_buf(),
    }
}

/// ~/.ssh/config, if there is one. Options vxmesh does not use are fine: a config with `StrictHostKeyChecking` or
/// `ForwardAgent` in it must not be ignored whole (it once was, silently).
pub fn load_ssh_config() -> Option<SshConfig> {
    let path = expand_home(Path::new("~/.ssh/config"));
    let f = std::fs::File::open(path).ok()?;
    let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
    SshConfig::default().parse(&mut std::io::BufReader::new(f), rules).ok()
}

/// An option the parser keeps only as words (`ProxyCommand`, `UserKnownHostsFile`), by its lowercase name.
fn raw_option<'a>(p: Option<&'a ssh2_config::HostParams>, name: &str) -> Option<&'a [String]> {
    p?.unsupported_fields.get(name).map(Vec::as_slice).filter(|w| !w.is_empty())
}

/// A `ProxyCommand` from its words (the parser split the line and kept quoted words with their quotes): joined
/// again, it is the line as written, run by `sh -c` as OpenSSH runs it; `%h`, `%p`, `%r`, `%n` and `%%` are replaced
/// by shell-quoted values, so no host name can add shell syntax.
pub fn proxy_command(words: &[String], host: &str, port: u16, user: &str, alias: &str) -> String {
    let line = words.join(" ");
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&crate::shell::quote(host)),
            Some('p') => out.push_str(&port.to_string()),
            Some('r') => out.push_str(&crate::shell::quote(user)),
            Some('n') => out.push_str(&crate::shell::quote(alias)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Merges the inventory's SSH settings with ~/.ssh/config for `host` (an address or an alias).
/// The inventory wins where it says something; ~/.ssh/config fills in; then root, port 22, the agent.
pub fn resolve(host: &str, settings: &SshSettings, config: Option<&SshConfig>) -> Target {
    resolve_depth(host, settings, config, 0)
}

fn resolve_depth(host: &str, settings: &SshSettings, config: Option<&SshConfig>, depth: usize) -> Target {
    let params = config.map(|c| c.query(host));
    let p = params.as_ref();
    let user = settings.user.clone().or_else(|| p.and_then(|p| p.user.clone())).unwrap_or_else(|| "root".into());
    let identity_files = match &settings.identity_file {
        Some(f) => vec![expand_home(f)],
        None => p.and_then(|p| p.identity_file.clone()).unwrap_or_default().iter().map(|f| expand_home(f)).collect(),
    };
    let jumps = if depth < 4 {
        p.and_then(|p| p.proxy_jump.clone())
            .unwrap_or_default()
            .iter()
            .filter(|j| j.as_str() != "none")
            .map(|j| {
                let (user, h, port) = split_jump(j);
                let jump_settings = SshSettings { user, port, ..settings.clone() };
                resolve_depth(h, &jump_settings, config, depth + 1)
            })
            .collect()
    } else {
        vec![]
    };
    let hostname = p.and_then(|p| p.host_name.clone()).unwrap_or_else(|| host.to_string());
    let port = settings.port.or_else(|| p.and_then(|p| p.port)).unwrap_or(22);
    // ProxyJump wins over ProxyCommand, as in OpenSSH; `none` turns either off.
    let proxy_command = raw_option(p, "proxycommand")
        .filter(|w| jumps.is_empty() && !(w.len() == 1 && w[0] == "none"))
        .map(|w| proxy_command(w, &hostname, port, &user, host));
    let known_hosts = match &settings.known_hosts {
        Some(k) => expand_home(k),
        None => raw_option(p, "userknownhostsfile")
            .map(|w| expand_home(Path::new(&w[0])))
            .unwrap_or_else(|| expand_home(Path::new("~/.ssh/known_hosts"))),
    };
    Target {
        host: hostname,
        port,
        sudo: match settings.r#become {
            Become::Yes => true,
            Become::No => false,
            Become::Auto => user != "root",
        },
        user,
        identity_files,
        jumps,
        proxy_command,
        known_hosts,
    }
}

impl Target {
    /// `user@host:port` for messages, an IPv6 address in brackets (`root@[2001:db8::11]:22`) so its port stands
    /// apart.
    pub fn shown(&self) -> String {
        match self.host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("{}@[{}]:{}", self.user, self.host, self.port),
            Err(_) => format!("{}@{}:{}", self.user, self.host, self.port),
        }
    }
}

/// One `ProxyJump` hop as OpenSSH writes it: `[user@]host[:port]`, an IPv6 address bare (`2001:db8::1`, no port)
/// or in brackets (`[2001:db8::1]:2222`).
fn split_jump(spec: &str) -> (Option<String>, &str, Option<u16>) {
    let (user, rest) = match spec.rsplit_once('@') {
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, spec),
    };
    if let Some(inner) = rest.strip_prefix('[')
        && let Some((host, after)) = inner.split_once(']')
    {
        return (user, host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    if rest.parse::<std::net::Ipv6Addr>().is_ok() {
        return (user, rest, None);
    }
    match rest.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (user, h, p.parse().ok()),
        _ => (user, rest, None),
    }
}

/// Checks the server's key against known_hosts; remembers why it refused, for the message.
struct Checker {
    host: String,
    port: u16,
    policy: HostKeyPolicy,
    refusal: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            *self.refusal.lock().unwrap() = Some(format!(
                "{} offered a host certificate; vxmesh checks plain host keys against known_hosts",
                self.host
            ));
            return Ok(false);
        };
        let verdict = check_host_key(&self.host, self.port, key, &self.policy);
        match verdict {
            Ok(()) => Ok(true),
            Err(why) => {
                *self.refusal.lock().unwrap() = Some(why);
                Ok(false)
            }
        }
    }
}

/// `Ok` when the key is known (or newly learnt under `accept_new`); otherwise the reason, for the user.
pub fn check_host_key(host: &str, port: u16, key: &PublicKey, policy: &HostKeyPolicy) -> Result<(), String> {
    let path = expand_home(&policy.known_hosts);
    let fingerprint = key.fingerprint(HashAlg::Sha256);
    let name = if port == 22 { host.to_string() } else { format!("[{host}]:{port}") };
    match keys::check_known_hosts_path(host, port, key, &path) {
        Ok(true) => Ok(()),
        Ok(false) if policy.accept_new => keys::known_hosts::learn_known_hosts_path(host, port, key, &path)
            .map_err(|e| format!("cannot add {name} to {}: {e}", path.display())),
        Ok(false) => Err(format!(
            "host key of {name} is not in {} ({} {fingerprint}); check the fingerprint on the host \
             (ssh-keygen -lf /etc/ssh/ssh_host_{}_key.pub) and add it, or run with --accept-new-host-keys",
            path.display(),
            key.algorithm().as_str(),
            key.algorithm().as_str().trim_start_matches("ssh-")
        )),
        Err(keys::Error::KeyChanged { line }) => Err(format!(
            "HOST KEY OF {name} HAS CHANGED: it is now {fingerprint}, not the key at {}:{}. \
             This may be an attack or a reinstalled host; if you know it was reinstalled, remove that line",
            path.display(),
            file_line(&path, line)
        )),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// russh numbers known_hosts entries without counting comment lines; editors count every line.
fn file_line(path: &Path, entry: usize) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut seen = 0;
    for (i, l) in text.lines().enumerate() {
        if !l.starts_with('#') {
            seen += 1;
            if seen == entry {
                return i + 1;
            }
        }
    }
    entry
}

/// One authenticated SSH connection, reused for every script sent to the host.
pub struct Session {
    handle: Handle<Checker>,
    /// Jump connections stay open while this one uses them.
    _jumps: Vec<Handle<Checker>>,
    /// The ProxyCommand carrying the connection, if any: killed when the session ends.
    _proxy: Option<tokio::process::Child>,
    sudo: bool,
    timeouts: Timeouts,
}

pub async fn connect(target: &Target, policy: &HostKeyPolicy, timeouts: &Timeouts) -> Result<Session, HostError> {
    let what = target.shown();
    match tokio::time::timeout(timeouts.connect, connect_inner(target, policy)).await {
        Ok(Ok((handle, jumps, proxy))) => {
            Ok(Session { handle, _jumps: jumps, _proxy: proxy, sudo: target.sudo, timeouts: timeouts.clone() })
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(HostError::Unreachable(format!(
            "cannot connect to {what}: no answer within {}s",
            timeouts.connect.as_secs()
        ))),
    }
}

fn config() -> Arc<client::Config> {
    Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(600)),
        keepalive_interval: Some(Duration::from_secs(15)),
        ..Default::default()
    })
}

type Connection = (Handle<Checker>, Vec<Handle<Checker>>, Option<tokio::process::Child>);

/// Starts a ProxyCommand (`sh -c`), its stdin and stdout the stream SSH is spoken over.
fn spawn_proxy(
    command: &str,
) -> Result<(tokio::process::Child, tokio::io::Join<tokio::process::ChildStdout, tokio::process::ChildStdin>), HostError>
{
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", command])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HostError::Unreachable(format!("cannot start ProxyCommand `{command}`: {e}")))?;
    let (Some(out), Some(inp)) = (child.stdout.take(), child.stdin.take()) else {
        return Err(HostError::Unreachable(format!("ProxyCommand `{command}` has no stdin or stdout")));
    };
    Ok((child, tokio::io::join(out, inp)))
}

async fn connect_inner(target: &Target, policy: &HostKeyPolicy) -> Result<Connection, HostError> {
    let what = target.shown();
    let refusal = Arc::new(Mutex::new(None));
    let policy = &HostKeyPolicy { known_hosts: target.known_hosts.clone(), ..policy.clone() };
    let checker =
        Checker { host: target.host.clone(), port: target.port, policy: policy.clone(), refusal: refusal.clone() };
    let explain = |e: russh::Error| match refusal.lock().unwrap().take() {
        Some(why) => HostError::HostKey(why),
        None => HostError::Unreachable(format!("cannot connect to {what}: {e}")),
    };
    let mut jumps = vec![];
    let mut proxy = None;
    let mut handle = if let Some(command) = &target.proxy_command {
        let (child, stream) = spawn_proxy(command)?;
        proxy = Some(child);
        client::connect_stream(config(), stream, checker).await.map_err(|e| match refusal.lock().unwrap().take() {
            Some(why) => HostError::HostKey(why),
            None => HostError::Unreachable(format!("cannot connect to {what} through ProxyCommand `{command}`: {e}")),
        })?
    } else if target.jumps.is_empty() {
        client::connect(config(), (target.host.as_str(), target.port), checker).await.map_err(explain)?
    } else {
        // Each hop opens a direct-tcpip channel to the next; the last one carries our SSH session.
        let mut prev: Option<Handle<Checker>> = None;
        for j in &target.jumps {
            let h = match prev.take() {
                None => Box::pin(connect_inner(j, policy)).await?.0,
                Some(p) => {
                    let ch = p
                        .channel_open_direct_tcpip(j.host.clone(), u32::from(j.port), "127.0.0.1", 0)
                        .await
                        .map_err(|e| HostError::Unreachable(format!("jump to {}: {e}", j.host)))?;
                    jumps.push(p);
                    let hop_refusal = Arc::new(Mutex::new(None));
                    let c = Checker {
                        host: j.host.clone(),
                        port: j.port,
                        policy: HostKeyPolicy { known_hosts: j.known_hosts.clone(), ..policy.clone() },
                        refusal: hop_refusal.clone(),
                    };
                    let mut h = client::connect_stream(config(), ch.into_stream(), c).await.map_err(|e| {
                        match hop_refusal.lock().unwrap().take() {
                            Some(why) => HostError::HostKey(why),
                            None => HostError::Unreachable(format!("via jump to {}: {e}", j.host)),
                        }
                    })?;
                    authenticate(&mut h, j).await?;
                    h
                }
            };
            prev = Some(h);
        }
        let last = prev.expect("at least one jump");
        let ch = last
            .channel_open_direct_tcpip(target.host.clone(), u32::from(target.port), "127.0.0.1", 0)
            .await
            .map_err(|e| HostError::Unreachable(format!("jump host cannot reach {what}: {e}")))?;
        jumps.push(last);
        client::connect_stream(config(), ch.into_stream(), checker).await.map_err(explain)?
    };
    authenticate(&mut handle, target).await?;
    Ok((handle, jumps, proxy))
}

/// Keys decrypted with a passphrase asked once on the terminal ([`unlock_keys`]), by file; or why a passphrase
/// given did not decrypt one, which authentication then reports for every host that needed that key.
static UNLOCKED: Mutex<Vec<(PathBuf, KeyOrWhy)>> = Mutex::new(Vec::new());

/// A key ready to use, or why it cannot be.
type KeyOrWhy = Result<Arc<keys::PrivateKey>, String>;

/// Before connecting anywhere: every key file of `targets` (and their jump hosts) that is protected by a
/// passphrase is decrypted once, the passphrase asked on the terminal, unless an ssh-agent runs (which may hold
/// the key; OpenSSH asks the agent first too). Without a terminal nothing is asked: such a key is reported at
/// authentication, with what to do.
pub fn unlock_keys(targets: &[Target]) {
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        return;
    }
    let mut files: Vec<&PathBuf> = vec![];
    let mut stack: Vec<&Target> = targets.iter().collect();
    while let Some(t) = stack.pop() {
        files.extend(&t.identity_files);
        stack.extend(&t.jumps);
    }
    files.sort();
    files.dedup();
    for file in files {
        if !matches!(keys::load_secret_key(file, None), Err(keys::Error::KeyIsEncrypted)) {
            continue;
        }
        let Ok(pass) = rpassword::prompt_password(format!("Enter passphrase for key {}: ", file.display())) else {
            return;
        };
        let key = keys::load_secret_key(file, Some(&pass))
            .map(Arc::new)
            .map_err(|e| format!("the passphrase given did not decrypt it: {e}"));
        UNLOCKED.lock().unwrap().push((file.clone(), key));
    }
}

/// A key file's key: decrypted before ([`unlock_keys`]) or readable as it is.
fn load_key(file: &Path) -> KeyOrWhy {
    if let Some((_, k)) = UNLOCKED.lock().unwrap().iter().find(|(f, _)| f == file) {
        return k.clone();
    }
    match keys::load_secret_key(file, None) {
        Ok(k) => Ok(Arc::new(k)),
        Err(keys::Error::KeyIsEncrypted) => {
            Err("protected by a passphrase: add it to the ssh-agent (ssh-add), or run vxmesh on a terminal to be asked"
                .into())
        }
        Err(e) => Err(format!("unreadable: {e}")),
    }
}

/// Key files first (as listed), then every key the ssh-agent holds.
async fn authenticate(h: &mut Handle<Checker>, target: &Target) -> Result<(), HostError> {
    let what = format!("{}@{}", target.user, target.host);
    let mut tried = vec![];
    for file in &target.identity_files {
        let key = match load_key(file) {
            Ok(k) => k,
            Err(why) => {
                tried.push(format!("{} ({why})", file.display()));
                continue;
            }
        };
        let hash = h.best_supported_rsa_hash().await.ok().flatten().flatten();
        let res = h
            .authenticate_publickey(target.user.clone(), PrivateKeyWithHashAlg::new(key, hash))
            .await
            .map_err(|e| HostError::Auth(format!("authentication to {what}: {e}")))?;
        if res.success() {
            return Ok(());
        }
        tried.push(format!("{} (not accepted)", file.display()));
    }
    if let Ok(mut agent) = keys::agent::client::AgentClient::connect_env().await {
        let identities = agent.request_identities().await.unwrap_or_default();
        for id in identities {
            let key = id.public_key().into_owned();
            let hash = h.best_supported_rsa_hash().await.ok().flatten().flatten();
            if let Ok(res) = h.authenticate_publickey_with(target.user.clone(), key, hash, &mut agent).await
                && res.success()
            {
                return Ok(());
            }
            tried.push(format!("agent key {}", id.comment()));
        }
    } else if target.identity_files.is_empty() {
        tried.push("no identity_file given and no ssh-agent (SSH_AUTH_SOCK) to ask".into());
    }
    Err(HostError::Auth(format!("{what} refused every key: {}", tried.join(", "))))
}

impl Session {
    /// Runs `script` with `sh -s` (under `sudo -n` when becoming root), the script on stdin.
    pub async fn run(&self, script: &str) -> Result<Output, HostError> {
        let fut = self.run_inner(script);
        match tokio::time::timeout(self.timeouts.command, fut).await {
            Ok(r) => r,
            Err(_) => Err(HostError::Timeout(self.timeouts.command.as_secs())),
        }
    }

    async fn run_inner(&self, script: &str) -> Result<Output, HostError> {
        let broken = |what: &str, e: russh::Error| HostError::Connection(format!("{what}: {e}"));
        let mut ch = self.handle.channel_open_session().await.map_err(|e| broken("cannot open a channel", e))?;
        let cmd = if self.sudo { "sudo -n sh -s" } else { "sh -s" };
        ch.exec(true, cmd).await.map_err(|e| broken(&format!("cannot start `{cmd}`"), e))?;
        ch.data(script.as_bytes()).await.map_err(|e| broken("cannot send the script", e))?;
        ch.eof().await.map_err(|e| broken("cannot send the script", e))?;
        let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), None);
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => err.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => code = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    err.extend_from_slice(format!("killed by signal {signal_name:?}").as_bytes());
                    code = Some(255);
                }
                _ => {}
            }
        }
        let code =
            code.ok_or_else(|| HostError::Connection("the connection closed before the command finished".into()))?;
        Ok(Output {
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
            code,
        })
    }

    pub async fn close(&self) {
        let _ = self.handle.disconnect(Disconnect::ByApplication, "", "en").await;
    }
}

impl Transport for Session {
    fn run<'a>(&'a self, script: &'a str) -> futures::future::BoxFuture<'a, Result<Output, HostError>> {
        Box::pin(Session::run(self, script))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SshSettings {
        SshSettings {
            user: None,
            port: None,
            identity_file: None,
            r#become: Become::Auto,
            known_hosts: Some("kh".into()),
        }
    }

    fn parse(text: &str) -> SshConfig {
        let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
        SshConfig::default().parse(&mut text.as_bytes(), rules).unwrap()
    }

    #[test]
    fn proxy_command_and_known_hosts_come_from_ssh_config() {
        let cfg = parse(
            "Host web1\n  HostName 10.1.2.3\n  User deploy\n  StrictHostKeyChecking yes\n  ProxyCommand ssh -W %h:%p \"jump host\" %% %r\n  UserKnownHostsFile ~/.ssh/fleet_hosts\n",
        );
        let mut s = settings();
        s.known_hosts = None;
        let t = resolve("web1", &s, Some(&cfg));
        assert_eq!(t.host, "10.1.2.3", "an option vxmesh does not use does not hide the rest");
        assert_eq!(t.proxy_command.as_deref(), Some("ssh -W 10.1.2.3:22 \"jump host\" % deploy"));
        assert!(t.known_hosts.ends_with(".ssh/fleet_hosts"), "{}", t.known_hosts.display());
        let t = resolve("web1", &settings(), Some(&cfg));
        assert_eq!(t.known_hosts, PathBuf::from("kh"), "the inventory's known_hosts wins");
        let none = parse("Host a\n  ProxyCommand none\n");
        assert_eq!(resolve("a", &settings(), Some(&none)).proxy_command, None);
        let both = parse("Host a\n  ProxyJump j\n  ProxyCommand nc %h %p\n");
        assert_eq!(resolve("a", &settings(), Some(&both)).proxy_command, None, "ProxyJump wins, as in OpenSSH");
    }

    #[test]
    fn proxy_command_quotes_what_it_substitutes() {
        let c = proxy_command(&["nc".into(), "%h".into(), "%p".into()], "a;touch /tmp/x", 22, "r", "n");
        assert_eq!(c, "nc 'a;touch /tmp/x' 22");
    }

    #[test]
    fn ssh_config_fills_in_what_the_inventory_leaves_out() {
        let text = "Host web1\n  HostName 10.1.2.3\n  User deploy\n  Port 2222\n  IdentityFile /keys/web\n  ProxyJump admin@bastion:2200\n";
        let cfg = SshConfig::default().parse(&mut text.as_bytes(), ParseRule::ALLOW_UNKNOWN_FIELDS).unwrap();
        let t = resolve("web1", &settings(), Some(&cfg));
        assert_eq!((t.host.as_str(), t.port, t.user.as_str()), ("10.1.2.3", 2222, "deploy"));
        assert_eq!(t.identity_files, [PathBuf::from("/keys/web")]);
        assert!(t.sudo, "a non-root user becomes root with sudo");
        assert_eq!(t.jumps.len(), 1);
        assert_eq!((t.jumps[0].host.as_str(), t.jumps[0].port, t.jumps[0].user.as_str()), ("bastion", 2200, "admin"));

        let mut explicit = settings();
        explicit.user = Some("root".into());
        explicit.port = Some(22);
        let t = resolve("web1", &explicit, Some(&cfg));
        assert_eq!((t.port, t.user.as_str(), t.sudo), (22, "root", false), "the inventory wins");
    }

    #[test]
    fn messages_put_an_ipv6_host_in_brackets() {
        let t = resolve("2001:db8::11", &settings(), None);
        assert_eq!(t.shown(), "root@[2001:db8::11]:22");
        assert_eq!(resolve("vm1", &settings(), None).shown(), "root@vm1:22");
    }

    #[test]
    fn jump_hosts_split_as_openssh_writes_them() {
        assert_eq!(split_jump("bastion"), (None, "bastion", None));
        assert_eq!(split_jump("ops@bastion:2222"), (Some("ops".into()), "bastion", Some(2222)));
        assert_eq!(split_jump("2001:db8::1"), (None, "2001:db8::1", None), "a bare IPv6 address has no port");
        assert_eq!(split_jump("ops@[2001:db8::1]:2222"), (Some("ops".into()), "2001:db8::1", Some(2222)));
        assert_eq!(split_jump("[::1]"), (None, "::1", None));
        assert_eq!(split_jump("192.0.2.7:22"), (None, "192.0.2.7", Some(22)));
    }

    #[test]
    fn an_ipv6_jump_host_from_ssh_config_keeps_its_whole_address() {
        let config = parse("Host inner\n  ProxyJump ops@[2001:db8::1]:2222,2001:db8::2\n");
        let t = resolve("inner", &settings(), Some(&config));
        let hops: Vec<(&str, u16, &str)> = t.jumps.iter().map(|j| (j.host.as_str(), j.port, j.user.as_str())).collect();
        assert_eq!(hops, [("2001:db8::1", 2222, "ops"), ("2001:db8::2", 22, "root")]);
    }

    #[test]
    fn without_config_defaults_are_root_and_22() {
        let t = resolve("192.0.2.1", &settings(), None);
        assert_eq!((t.host.as_str(), t.port, t.user.as_str(), t.sudo), ("192.0.2.1", 22, "root", false));
        assert!(t.jumps.is_empty() && t.identity_files.is_empty());
    }
}
