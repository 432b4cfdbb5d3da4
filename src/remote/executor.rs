//! Runs work on every host in parallel (bounded by `--forks`), one SSH connection per host, with progress bars;
//! one host's failure never stops the others. Every host ends with one [`Outcome`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::interrupt::Stop;
use super::ssh::{self, HostKeyPolicy, Session, Timeouts};
use crate::converge::{Output, Transport};
use crate::error::HostError;
use crate::model::inventory::Inventory;
use crate::plan::{ClusterPlan, NodePlan};

#[derive(Clone)]
pub struct Options {
    pub forks: usize,
    pub policy: HostKeyPolicy,
    pub timeouts: Timeouts,
    /// Draw progress bars on stderr (off for --json and when stderr is not a terminal).
    pub progress: bool,
    /// Ctrl-C: hosts already working finish their step and report; no new host is started.
    pub stop: Stop,
    /// `--limit`: node names or globs (`*`, `?`); only matching hosts are contacted. Empty: every host.
    pub limit: Vec<String>,
    /// Where this run's record goes (commands that change hosts): every script sent, every answer, per host.
    pub record: Option<PathBuf>,
    /// Shown every script a host ran and what came back (`-v`); `None` keeps them to the commands.
    pub transcript: Option<Transcript>,
}

/// Called after each script a host ran, with the host's node, the script, what came back, and how long it took.
pub type Transcript = Arc<dyn Fn(&NodePlan, &str, &Result<Output, HostError>, Duration) + Send + Sync>;

/// A transport that hands every script and its outcome to a [`Transcript`] once it ends.
struct Logged {
    inner: Arc<dyn Transport>,
    node: Arc<NodePlan>,
    transcript: Transcript,
}

impl Transport for Logged {
    fn run<'a>(&'a self, script: &'a str) -> BoxFuture<'a, Result<Output, HostError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.run(script).await;
            (self.transcript)(&self.node, script, &result, started.elapsed());
            result
        })
    }
}

impl Options {
    pub fn stopped(&self) -> bool {
        self.stop.stopped()
    }

    /// Whether `--limit` lets this command reach node `name`.
    pub fn includes(&self, name: &str) -> bool {
        limit_takes(&self.limit, name)
    }

    /// The plan as far as this command reaches: the nodes `--limit` lets in (each still planned with every peer).
    pub fn reach(&self, plan: &ClusterPlan) -> ClusterPlan {
        let mut p = plan.clone();
        p.nodes.retain(|n| self.includes(&n.name));
        p
    }
}

/// Whether `--limit` patterns (none: every node) take node `name`.
pub fn limit_takes(limit: &[String], name: &str) -> bool {
    limit.is_empty() || limit.iter().any(|p| glob_match(p, name))
}

/// `*` any run of characters, `?` one character, everything else itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// A host's connection, or why there is none. Any [`Transport`] will do (tests use recorded ones).
pub struct Connected {
    pub node: Arc<NodePlan>,
    pub session: Result<Arc<dyn Transport>, HostError>,
}

/// How one host ended a command.
#[derive(Debug)]
pub struct Outcome<T> {
    pub node: Arc<NodePlan>,
    pub result: Result<T, HostError>,
    pub elapsed: Duration,
}

/// Progress: an overall bar and one line per host in flight.
#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
}

impl Progress {
    pub fn new(enabled: bool, total: usize, what: &str) -> Progress {
        let target = if enabled { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} hosts {elapsed}")
                .expect("template")
                .progress_chars("=> "),
        );
        overall.set_prefix(what.to_string());
        Progress { multi, overall }
    }

    pub fn host(&self, name: &str) -> ProgressBar {
        let bar = self.multi.insert_before(&self.overall, ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("  {spinner} {prefix:<14} {msg}").expect("template"));
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    pub fn done(&self, bar: ProgressBar) {
        bar.finish_and_clear();
        self.overall.inc(1);
    }

    pub fn finish(&self) {
        self.overall.finish_and_clear();
    }
}

/// How a command reaches its hosts: SSH for the CLI ([`Ssh`]); a benchmark or a test may bring its own (a
/// simulated fleet), and every command then runs its real code over it.
pub trait Connect: Send + Sync {
    /// One connection to `node`'s host, or why there is none.
    fn connect<'a>(
        &'a self,
        node: &'a NodePlan,
        opts: &'a Options,
    ) -> BoxFuture<'a, Result<Arc<dyn Connection>, HostError>>;
}

/// A connection: scripts run over it, and it is closed once the command is done with the host.
pub trait Connection: Transport {
    fn close(&self) -> BoxFuture<'_, ()>;
}

impl Connection for Session {
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(Session::close(self))
    }
}

/// The CLI's way to its hosts: one SSH connection per host, targets from the inventory and `~/.ssh/config`.
pub struct Ssh {
    targets: std::collections::HashMap<String, ssh::Target>,
}

impl Ssh {
    /// Resolves every node `opts` reaches and asks each key's passphrase once, before connecting in parallel.
    pub fn new(inv: &Inventory, plan: &ClusterPlan, opts: &Options) -> Ssh {
        let config = ssh::load_ssh_config();
        let reached: Vec<&NodePlan> = plan.nodes.iter().filter(|n| opts.includes(&n.name)).collect();
        let targets: Vec<ssh::Target> =
            reached.iter().map(|n| ssh::resolve(&n.host, &inv.ssh, config.as_ref())).collect();
        // Passphrases are asked here, once per key, before the connections run in parallel.
        ssh::unlock_keys(&targets);
        Ssh { targets: reached.iter().map(|n| n.name.clone()).zip(targets).collect() }
    }
}

impl Connect for Ssh {
    fn connect<'a>(
        &'a self,
        node: &'a NodePlan,
        opts: &'a Options,
    ) -> BoxFuture<'a, Result<Arc<dyn Connection>, HostError>> {
        Box::pin(async move {
            let target = self
                .targets
                .get(&node.name)
                .ok_or_else(|| HostError::Unreachable(format!("no SSH target resolved for node {}", node.name)))?;
            let session = ssh::connect(target, &opts.policy, &opts.timeouts).await?;
            Ok(Arc::new(session) as Arc<dyn Connection>)
        })
    }
}

/// Open connections keep their host; closing them politely ends it.
pub struct Sessions(Vec<Arc<dyn Connection>>);

impl Sessions {
    pub async fn close(&self) {
        for s in &self.0 {
            s.close().await;
        }
    }
}

type ConnectionOrWhy = Result<Arc<dyn Connection>, HostError>;

/// Opens one SSH connection per host, all in parallel (bounded), host keys checked.
pub async fn connect_all(inv: &Inventory, plan: &ClusterPlan, opts: &Options) -> (Vec<Connected>, Sessions) {
    connect_with(&Ssh::new(inv, plan, opts), plan, opts).await
}

/// Opens one connection per host `opts` reaches through `connector`, all in parallel (bounded by `--forks`); each
/// is wrapped as `-v` and the run record ask.
pub async fn connect_with(connector: &dyn Connect, plan: &ClusterPlan, opts: &Options) -> (Vec<Connected>, Sessions) {
    let reached = plan.nodes.iter().filter(|n| opts.includes(&n.name));
    let results: Vec<(Arc<NodePlan>, ConnectionOrWhy)> = bounded(
        reached.map(|n| {
            let node = Arc::new(n.clone());
            async move {
                if opts.stopped() {
                    return (node, Err(HostError::Interrupted));
                }
                let link = connector.connect(&node, opts).await;
                (node, link)
            }
        }),
        opts.forks,
    )
    .await;
    let sessions = Sessions(results.iter().filter_map(|(_, s)| s.as_ref().ok().cloned()).collect());
    // The run record is a transcript too: every script and its answer, appended to the host's file.
    let record: Option<Transcript> = opts.record.clone().map(|dir| {
        Arc::new(move |n: &NodePlan, script: &str, r: &Result<Output, HostError>, took: Duration| {
            super::record::append(&dir, &n.name, script, r, took)
        }) as Transcript
    });
    let connected = results
        .into_iter()
        .map(|(node, s)| {
            let session = s.map(|s| {
                let s: Arc<dyn Transport> = s;
                let s = with_transcript(s, &node, record.as_ref());
                with_transcript(s, &node, opts.transcript.as_ref())
            });
            Connected { node, session }
        })
        .collect();
    (connected, sessions)
}

/// `session`, handing each script it runs and what came back to `transcript`, when there is one.
pub fn with_transcript(
    session: Arc<dyn Transport>,
    node: &Arc<NodePlan>,
    transcript: Option<&Transcript>,
) -> Arc<dyn Transport> {
    match transcript {
        Some(t) => Arc::new(Logged { inner: session, node: node.clone(), transcript: t.clone() }),
        None => session,
    }
}

/// Runs `futures` at most `limit` at a time; results in input order.
pub async fn bounded<T>(futures: impl IntoIterator<Item = impl Future<Output = T>>, limit: usize) -> Vec<T> {
    let mut out: Vec<(usize, T)> =
        futures::stream::iter(futures.into_iter().enumerate().map(|(i, f)| async move { (i, f.await) }))
            .buffer_unordered(limit.max(1))
            .collect()
            .await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, t)| t).collect()
}

/// Runs `op` on every connected host in parallel (bounded); hosts without a connection report why.
pub async fn on_each<T, F, Fut>(hosts: &[Connected], opts: &Options, what: &str, op: F) -> Vec<Outcome<T>>
where
    F: Fn(Arc<NodePlan>, Arc<dyn Transport>, ProgressBar) -> Fut,
    Fut: Future<Output = Result<T, HostError>>,
{
    let progress = Progress::new(opts.progress, hosts.len(), what);
    let out = bounded(
        hosts.iter().map(|h| {
            let node = h.node.clone();
            let work = match &h.session {
                Err(e) => Err(e.clone()),
                Ok(session) => {
                    let bar = progress.host(&node.name);
                    Ok((op(node.clone(), session.clone(), bar.clone()), bar))
                }
            };
            let (progress, stop) = (progress.clone(), opts.stop.clone());
            async move {
                let started = Instant::now();
                let result = match work {
                    Err(e) => Err(e),
                    Ok((_, bar)) if stop.stopped() => {
                        progress.done(bar);
                        Err(HostError::Interrupted)
                    }
                    Ok((fut, bar)) => {
                        let r = fut.await;
                        progress.done(bar);
                        r
                    }
                };
                Outcome { node, result, elapsed: started.elapsed() }
            }
        }),
        opts.forks,
    )
    .await;
    progress.finish();
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A host that prints the script back in capitals, or fails on `fail`.
    struct Shouting;

    impl Transport for Shouting {
        fn run<'a>(&'a self, script: &'a str) -> BoxFuture<'a, Result<Output, HostError>> {
            Box::pin(async move {
                if script == "fail" {
                    return Err(HostError::Connection("gone".into()));
                }
                Ok(Output { stdout: script.to_uppercase(), stderr: "e".into(), code: 3 })
            })
        }
    }

    #[test]
    fn a_transcript_sees_every_script_and_what_came_back() {
        let yaml = "cluster: {cidr: 172.16.0.0/12}\nnodes: [{name: a, host: 192.0.2.1}]\n";
        let inv = crate::model::inventory::parse(std::path::Path::new("t.yaml"), yaml).unwrap();
        let lock = crate::model::ipam::assign(&inv, None).unwrap();
        let node = Arc::new(crate::plan::plan(&inv, &lock).nodes[0].clone());
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let transcript: Transcript = Arc::new(move |n: &NodePlan, script: &str, r: &Result<Output, HostError>, _| {
            let what = match r {
                Ok(o) => format!("{} {script} -> {} {} {}", n.name, o.stdout, o.stderr, o.code),
                Err(e) => format!("{} {script} -> {e}", n.name),
            };
            log.lock().unwrap().push(what);
        });
        let plain = with_transcript(Arc::new(Shouting), &node, None);
        let logged = with_transcript(Arc::new(Shouting), &node, Some(&transcript));
        let out = futures::executor::block_on(async {
            plain.run("quiet").await.unwrap();
            let first = logged.run("echo hi").await;
            let second = logged.run("fail").await;
            (first, second)
        });
        // The command gets exactly what the host answered; the transcript saw the same.
        assert_eq!(out.0.unwrap(), Output { stdout: "ECHO HI".into(), stderr: "e".into(), code: 3 });
        assert_eq!(out.1.unwrap_err(), HostError::Connection("gone".into()));
        assert_eq!(*seen.lock().unwrap(), ["a echo hi -> ECHO HI e 3", "a fail -> gone"]);
    }

    #[test]
    fn globs_match_names_as_shells_do() {
        for (p, n, m) in [
            ("node1", "node1", true),
            ("node1", "node10", false),
            ("node*", "node10", true),
            ("*1", "web1", true),
            ("n?de?", "node2", true),
            ("n?de?", "node", false),
            ("*", "", true),
            ("web-*-db", "web-eu-db", true),
            ("web-*-db", "web-eu-dbx", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ] {
            assert_eq!(glob_match(p, n), m, "{p} ~ {n}");
        }
    }
}
