//! The lock file beside the inventory (the address plan as allocated) and its guard file: reading a lock as
//! untrusted text, saving it safely, and the `flock` that keeps two vxmesh commands on one inventory apart.
//!
//! A lock is input like the inventory: every message that quotes it names the field and the value, escaped, so a
//! lock someone else wrote cannot forge lines or drive the terminal.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};

use crate::error::{Error, Result};
use crate::model::files::{self, NotRegular, Opened};
use crate::model::inventory::{Cluster, Encryption, shown};

pub const LOCK_VERSION: u32 = 1;

/// A lock holds ~150 bytes per node; past this it is not one vxmesh wrote.
const MAX_LOCK_BYTES: u64 = 64 * 1024 * 1024;

/// What one node was given. `id` numbers the switch address: `switch_cidr` network + id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Allocation {
    pub id: u32,
    pub subnet: Ipv4Net,
    pub switch_ip: Ipv4Addr,
    /// With encryption: `wireguard_cidr` network + id, the address its tunnels run between.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wireguard_ip: Option<Ipv4Addr>,
    /// With `cluster.cidr6`: the node's IPv6 block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
}

/// The lock file's content: the cluster shape it was made for, and every node's allocation.
#[derive(Debug, Clone)]
pub struct Lock {
    pub version: u32,
    pub cidr: Ipv4Net,
    pub node_prefix: u8,
    pub switch_cidr: Ipv4Net,
    /// With encryption: the range the WireGuard addresses come from.
    pub wireguard_cidr: Option<Ipv4Net>,
    /// With dual-stack containers: the IPv6 range and the node blocks' prefix length the blocks were cut for.
    pub cidr6: Option<(Ipv6Net, u8)>,
    pub nodes: BTreeMap<String, Allocation>,
    /// The file this lock was read from, which its problems are reported against; `None` for one made in memory.
    pub origin: Option<PathBuf>,
}

/// Two locks are equal when they allocate the same; where they came from does not matter.
impl PartialEq for Lock {
    fn eq(&self, o: &Self) -> bool {
        (self.version, self.cidr, self.node_prefix, self.switch_cidr, self.wireguard_cidr, self.cidr6, &self.nodes)
            == (o.version, o.cidr, o.node_prefix, o.switch_cidr, o.wireguard_cidr, o.cidr6, &o.nodes)
    }
}

impl Eq for Lock {}

impl Serialize for Lock {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Written<'a> {
            version: u32,
            cidr: Ipv4Net,
            node_prefix: u8,
            switch_cidr: Ipv4Net,
            #[serde(skip_serializing_if = "Option::is_none")]
            wireguard_cidr: Option<Ipv4Net>,
            #[serde(skip_serializing_if = "Option::is_none")]
            cidr6: Option<Ipv6Net>,
            #[serde(skip_serializing_if = "Option::is_none")]
            node_prefix6: Option<u8>,
            nodes: &'a BTreeMap<String, Allocation>,
        }
        Written {
            version: self.version,
            cidr: self.cidr,
            node_prefix: self.node_prefix,
            switch_cidr: self.switch_cidr,
            wireguard_cidr: self.wireguard_cidr,
            cidr6: self.cidr6.map(|c| c.0),
            node_prefix6: self.cidr6.map(|c| c.1),
            nodes: &self.nodes,
        }
        .serialize(s)
    }
}

/// `vxmesh.yaml` -> `vxmesh.lock`, in the same directory.
pub fn lock_path(inventory: &Path) -> PathBuf {
    inventory.with_extension("lock")
}

/// `vxmesh.yaml` -> `vxmesh.lock.guard`: the file [`Guard`] locks.
pub fn guard_path(inventory: &Path) -> PathBuf {
    lock_path(inventory).with_extension("lock.guard")
}

pub(crate) fn lock_err(file: &Path, message: String) -> Error {
    Error::Lock { file: file.to_path_buf(), message }
}

/// The lock's text; `None` when there is none. Only a regular file is read: a symlink could make vxmesh read
/// (and later replace) a file elsewhere, a FIFO or a device would hang or never end.
fn read_lock(path: &Path) -> Result<Option<String>> {
    let io = |source| Error::Io { action: "read the lock file", path: path.to_path_buf(), source };
    let file = match files::open_regular(path, false).map_err(io)? {
        Opened::Missing => return Ok(None),
        Opened::File(f) => f,
        Opened::NotRegular(NotRegular::Symlink) => {
            return Err(lock_err(
                path,
                "is a symbolic link; vxmesh reads and replaces the lock in place, so it must be a regular file \
                 (copy the file the link points to over the link)"
                    .into(),
            ));
        }
        Opened::NotRegular(kind) => return Err(lock_err(path, format!("{}; move it away", kind.describe()))),
    };
    let mut bytes = Vec::new();
    file.take(MAX_LOCK_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_LOCK_BYTES {
        return Err(lock_err(path, format!("is larger than {MAX_LOCK_BYTES} bytes; it is not a lock vxmesh wrote")));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| lock_err(path, "is not UTF-8 text; it is not a lock vxmesh wrote".into()))
}

impl Lock {
    pub fn empty(cluster: &Cluster) -> Self {
        Lock {
            version: LOCK_VERSION,
            cidr: cluster.cidr,
            node_prefix: cluster.node_prefix,
            switch_cidr: cluster.switch_cidr,
            wireguard_cidr: (cluster.encryption == Encryption::Wireguard).then_some(cluster.wireguard.cidr),
            cidr6: cluster.ipv6.map(|o| (o.cidr, o.node_prefix)),
            nodes: BTreeMap::new(),
            origin: None,
        }
    }

    /// Reads the lock at `path`; `None` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Lock>> {
        let Some(text) = read_lock(path)? else { return Ok(None) };
        let mut lock = Lock::parse(&text).map_err(|m| lock_err(path, m))?;
        lock.origin = Some(path.to_path_buf());
        Ok(Some(lock))
    }

    /// A lock's text, checked: every message names the field and quotes the value escaped.
    pub fn parse(text: &str) -> std::result::Result<Lock, String> {
        const AFRESH: &str = "fix it or delete it to allocate afresh";
        let json: Json = serde_json::from_str(text).map_err(|e| {
            // serde_json's own words quote no input but a key; escaped all the same.
            format!("{}:{}: {}; {AFRESH}", e.line(), e.column(), shown_long(&e.to_string()))
        })?;
        let lock = decode(json).map_err(|m| format!("{m}; {AFRESH}"))?;
        if lock.version != LOCK_VERSION {
            return Err(format!(
                "version {} is not supported (this vxmesh writes version {LOCK_VERSION})",
                lock.version
            ));
        }
        lock.check_blocks().map_err(|m| format!("{m}; {AFRESH}"))?;
        Ok(lock)
    }

    /// Every range in the lock is a block: `10.0.0.1/24` is a typo, and reading it as `10.0.0.0/24` would be a guess.
    fn check_blocks(&self) -> std::result::Result<(), String> {
        let host_bits = |net: &Ipv4Net| net.addr() != net.network();
        let wireguard = self.wireguard_cidr.iter().map(|w| ("wireguard_cidr", w));
        for (what, net) in [("cidr", &self.cidr), ("switch_cidr", &self.switch_cidr)].into_iter().chain(wireguard) {
            if host_bits(net) {
                return Err(format!("`{what}` `{net}` has host bits set (did you mean `{}`?)", net.trunc()));
            }
        }
        let host_bits6 = |net: &Ipv6Net| net.addr() != net.network();
        if let Some((c, _)) = self.cidr6.filter(|(c, _)| host_bits6(c)) {
            return Err(format!("`cidr6` `{c}` has host bits set (did you mean `{}`?)", c.trunc()));
        }
        if let Some((name, s)) = self.nodes.iter().find_map(|(n, a)| a.subnet6.filter(host_bits6).map(|s| (n, s))) {
            return Err(format!(
                "node `{}` has subnet6 `{s}` with host bits set (did you mean `{}`?)",
                shown(name),
                s.trunc()
            ));
        }
        match self.nodes.iter().find(|(_, a)| host_bits(&a.subnet)) {
            Some((name, a)) => Err(format!(
                "node `{}` has subnet `{}` with host bits set (did you mean `{}`?)",
                shown(name),
                a.subnet,
                a.subnet.trunc()
            )),
            None => Ok(()),
        }
    }

    /// Writes the lock with [`files::save`]: a crash leaves the old lock or the new one, and nothing planted
    /// beside it is followed.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self).expect("a lock serializes");
        text.push('\n');
        files::save(path, text.as_bytes(), files::Kind::Lock, files::Replace::Yes)
    }
}

/// Longer than [`shown`] allows: a parser message is a sentence, not a value.
fn shown_long(s: &str) -> String {
    crate::model::inventory::escaped(s, 300)
}

/// A JSON value as written, keys in order and duplicates kept (a map would keep only the last: a node listed
/// twice would silently move).
#[derive(Debug)]
enum Json {
    Object(Vec<(String, Json)>),
    List,
    Text(String),
    Number(String),
    Bool(bool),
    Null,
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Json, E> {
        // `1.0` stays `1.0`, which is not a whole number.
        Ok(Json::Number(format!("{v:?}")))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Json, E> {
        Ok(Json::Text(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Json, E> {
        Ok(Json::Text(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Json, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Json::List)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            entries.push((k, map.next_value()?));
        }
        Ok(Json::Object(entries))
    }
}

/// `field: `value` is not EXPECTED`, worded by what the value is instead.
fn wrong(field: &str, v: &Json, expected: &str) -> String {
    let field = if field.is_empty() { String::new() } else { format!("{field}: ") };
    match v {
        Json::Null => format!("{field}is null; expected {expected}"),
        Json::List => format!("{field}is a list; expected {expected}"),
        Json::Object(_) => format!("{field}is an object; expected {expected}"),
        Json::Text(t) => format!("{field}`{}` is not {expected}", shown(t)),
        Json::Number(n) => format!("{field}`{n}` is not {expected}"),
        Json::Bool(b) => format!("{field}`{b}` is not {expected}"),
    }
}

fn whole<T: TryFrom<u64>>(field: &str, v: &Json, expected: &str) -> std::result::Result<T, String> {
    match v {
        Json::Number(n) => n.parse::<u64>().ok().and_then(|n| T::try_from(n).ok()),
        _ => None,
    }
    .ok_or_else(|| wrong(field, v, expected))
}

fn parsed<T: std::str::FromStr>(field: &str, v: &Json, expected: &str) -> std::result::Result<T, String> {
    match v {
        Json::Text(t) => t.parse::<T>().ok(),
        _ => None,
    }
    .ok_or_else(|| wrong(field, v, expected))
}

const CIDR: &str = "an IPv4 CIDR";
const ADDRESS: &str = "an IPv4 address";

/// The fields of one JSON object, each taken once: unknown and repeated keys are refused by name.
struct Fields<'a> {
    at: &'a str,
    known: &'static [&'static str],
    found: BTreeMap<&'static str, &'a Json>,
}

impl<'a> Fields<'a> {
    fn of(
        at: &'a str,
        v: &'a Json,
        known: &'static [&'static str],
        expected: &str,
    ) -> std::result::Result<Self, String> {
        let Json::Object(entries) = v else { return Err(wrong(at, v, expected)) };
        let mut found = BTreeMap::new();
        let prefix = if at.is_empty() { String::new() } else { format!("{at}: ") };
        for (k, v) in entries {
            let Some(name) = known.iter().find(|n| **n == k.as_str()) else {
                let list: Vec<String> = known.iter().map(|n| format!("`{n}`")).collect();
                return Err(format!("{prefix}unknown field `{}`; expected {}", shown(k), list.join(", ")));
            };
            if found.insert(*name, v).is_some() {
                return Err(format!("{prefix}field `{name}` is written twice"));
            }
        }
        Ok(Fields { at, known, found })
    }

    fn path(&self, name: &str) -> String {
        if self.at.is_empty() { name.to_string() } else { format!("{}.{name}", self.at) }
    }

    fn required(&self, name: &'static str) -> std::result::Result<&'a Json, String> {
        debug_assert!(self.known.contains(&name));
        self.found.get(name).copied().ok_or_else(|| {
            let at = if self.at.is_empty() { String::new() } else { format!("{}: ", self.at) };
            format!("{at}missing field `{name}`")
        })
    }

    /// A field that may be left out or written as null.
    fn optional(&self, name: &'static str) -> Option<&'a Json> {
        self.found.get(name).copied().filter(|v| !matches!(v, Json::Null))
    }
}

const TOP: &[&str] =
    &["version", "cidr", "node_prefix", "switch_cidr", "wireguard_cidr", "cidr6", "node_prefix6", "nodes"];
const NODE: &[&str] = &["id", "subnet", "switch_ip", "wireguard_ip", "subnet6"];
const CIDR6: &str = "an IPv6 CIDR";

fn decode(json: Json) -> std::result::Result<Lock, String> {
    let top = Fields::of("", &json, TOP, "a JSON object")?;
    let version: u32 = whole("version", top.required("version")?, "a version number")?;
    let cidr: Ipv4Net = parsed("cidr", top.required("cidr")?, CIDR)?;
    let node_prefix: u8 = whole("node_prefix", top.required("node_prefix")?, "a prefix length in 0..=32")?;
    let switch_cidr: Ipv4Net = parsed("switch_cidr", top.required("switch_cidr")?, CIDR)?;
    let wireguard_cidr = top.optional("wireguard_cidr").map(|v| parsed("wireguard_cidr", v, CIDR)).transpose()?;
    let cidr6: Option<Ipv6Net> = top.optional("cidr6").map(|v| parsed("cidr6", v, CIDR6)).transpose()?;
    let node_prefix6: Option<u8> =
        top.optional("node_prefix6").map(|v| whole("node_prefix6", v, "a prefix length in 1..=128")).transpose()?;
    let cidr6 = match (cidr6, node_prefix6) {
        (Some(c), Some(p)) if p > c.prefix_len() && p <= 128 => Some((c, p)),
        (None, None) => None,
        (c, p) => {
            return Err(format!(
                "`cidr6` `{}` and `node_prefix6` `{}` do not go together (both or neither, the prefix longer than the range's)",
                c.map_or("unset".into(), |c| c.to_string()),
                p.map_or("unset".into(), |p| p.to_string())
            ));
        }
    };
    let nodes_v = top.required("nodes")?;
    let Json::Object(entries) = nodes_v else {
        return Err(wrong("nodes", nodes_v, "an object from node names to allocations"));
    };
    let mut nodes = BTreeMap::new();
    for (name, v) in entries {
        if nodes.contains_key(name) {
            return Err(format!("node `{}` is listed twice", shown(name)));
        }
        let at = format!("nodes[{}]", shown(name));
        let f = Fields::of(&at, v, NODE, "an object with `id`, `subnet` and `switch_ip`")?;
        let a = Allocation {
            id: whole(&f.path("id"), f.required("id")?, "a switch id")?,
            subnet: parsed(&f.path("subnet"), f.required("subnet")?, CIDR)?,
            switch_ip: parsed(&f.path("switch_ip"), f.required("switch_ip")?, ADDRESS)?,
            wireguard_ip: f
                .optional("wireguard_ip")
                .map(|v| parsed(&f.path("wireguard_ip"), v, ADDRESS))
                .transpose()?,
            subnet6: f.optional("subnet6").map(|v| parsed(&f.path("subnet6"), v, CIDR6)).transpose()?,
        };
        nodes.insert(name.clone(), a);
    }
    if node_prefix > 32 {
        return Err(format!("node_prefix: `{node_prefix}` is not a prefix length in 0..=32"));
    }
    Ok(Lock { version, cidr, node_prefix, switch_cidr, wireguard_cidr, cidr6, nodes, origin: None })
}

/// Held for a whole command: two vxmesh commands on one inventory never interleave. It `flock`s
/// `vxmesh.lock.guard` beside the lock file (which is replaced by rename on every save, so it cannot carry the lock
/// itself). Dropping it releases the lock.
#[derive(Debug)]
pub struct Guard {
    _file: std::fs::File,
    path: PathBuf,
}

impl Guard {
    /// Takes the guard of the inventory at `inventory`. The guard file is created when absent, but never through a
    /// symlink, and anything but a regular file there is refused with a message naming it; opening never blocks.
    /// When another command holds it: with `no_wait` an [`Error::Busy`], otherwise `waiting` is called with the
    /// line to show and the lock is awaited.
    pub fn acquire(inventory: &Path, no_wait: bool, waiting: impl FnOnce(&str)) -> Result<Guard> {
        let path = guard_path(inventory);
        let file = match files::open_lockable(&path) {
            Ok(Ok(f)) => f,
            Ok(Err(kind)) => {
                return Err(lock_err(
                    &path,
                    format!(
                        "{}; vxmesh only locks this file to keep two commands apart, and will not open anything else \
                         there: move it away",
                        kind.describe()
                    ),
                ));
            }
            Err(source) => return Err(Error::Io { action: "open the inventory's guard file", path, source }),
        };
        match file.try_lock() {
            Ok(()) => return Ok(Guard { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Error::Io { action: "lock the inventory's guard file", path, source });
            }
        }
        let busy = Error::Busy { inventory: inventory.to_path_buf(), guard: path.clone() };
        if no_wait {
            return Err(busy);
        }
        waiting(&format!("{}; waiting for it to finish (Ctrl-C to give up)", busy.without_advice()));
        file.lock().map_err(|source| Error::Io {
            action: "lock the inventory's guard file",
            path: path.clone(),
            source,
        })?;
        Ok(Guard { _file: file, path })
    }

    /// The file held.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes `a` and `b` of a 10.0.0.0/8 cluster, as the allocator gives them (built here: the allocator uses this
    /// module, not the other way round).
    fn sample() -> Lock {
        let a = |id: u32, subnet: &str, switch_ip: &str| Allocation {
            id,
            subnet: subnet.parse().unwrap(),
            switch_ip: switch_ip.parse().unwrap(),
            wireguard_ip: None,
            subnet6: None,
        };
        Lock {
            version: LOCK_VERSION,
            cidr: "10.0.0.0/8".parse().unwrap(),
            node_prefix: 16,
            switch_cidr: "10.255.0.0/16".parse().unwrap(),
            wireguard_cidr: None,
            cidr6: None,
            nodes: [
                ("a".to_string(), a(1, "10.0.0.0/16", "10.255.0.1")),
                ("b".into(), a(2, "10.1.0.0/16", "10.255.0.2")),
            ]
            .into(),
            origin: None,
        }
    }

    #[test]
    fn lock_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vxmesh.lock");
        let lock = sample();
        lock.save(&path).unwrap();
        let back = Lock::load(&path).unwrap().unwrap();
        assert_eq!(back, lock);
        assert_eq!(back.origin.as_deref(), Some(path.as_path()), "a loaded lock knows its file");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left behind");
    }

    /// A valid lock's text for nodes `a` and `b`, to be broken by each test.
    fn lock_text() -> String {
        serde_json::to_string_pretty(&sample()).unwrap()
    }

    /// Writes `text` as a lock in a fresh directory and loads it.
    fn load_text(text: &str) -> Result<Option<Lock>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vxmesh.lock");
        std::fs::write(&path, text).unwrap();
        Lock::load(&path)
    }

    fn refusal(text: &str) -> String {
        let e = load_text(text).unwrap_err().to_string();
        assert!(!e.chars().any(char::is_control), "a lock's message carries no control character: {e:?}");
        e
    }

    #[test]
    fn the_written_text_is_what_it_was() {
        assert!(lock_text().starts_with("{\n  \"version\": 1,\n  \"cidr\": \"10.0.0.0/8\",\n  \"node_prefix\": 16,"));
        assert!(!lock_text().contains("origin"));
        assert!(load_text(&lock_text()).unwrap().is_some());
    }

    #[test]
    fn a_node_listed_twice_in_the_lock_is_refused_not_the_last_one_taken() {
        // The second entry would silently move `a` to 10.1.0.0/16.
        let text = r#"{"version": 1, "cidr": "10.0.0.0/8", "node_prefix": 16, "switch_cidr": "10.255.0.0/16", "nodes": {
            "a": {"id": 1, "subnet": "10.0.0.0/16", "switch_ip": "10.255.0.1"},
            "a": {"id": 2, "subnet": "10.1.0.0/16", "switch_ip": "10.255.0.2"}}}"#;
        let e = refusal(text);
        assert!(e.contains("node `a` is listed twice"), "{e}");
        assert!(load_text(&text.replacen("\"a\": {\"id\": 2", "\"b\": {\"id\": 2", 1)).is_ok());
    }

    #[test]
    fn a_lock_subnet_with_host_bits_is_refused() {
        let text = lock_text().replacen("\"10.0.0.0/16\"", "\"10.0.0.1/16\"", 1);
        let e = refusal(&text);
        assert!(
            e.contains("node `a` has subnet `10.0.0.1/16` with host bits set (did you mean `10.0.0.0/16`?)"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_in_a_node_entry_are_refused() {
        let text = lock_text().replacen("\"id\": 1,", "\"id\": 1,\n      \"vlan\": 7,", 1);
        let e = refusal(&text);
        assert!(e.contains("nodes[a]: unknown field `vlan`; expected `id`, `subnet`"), "{e}");
    }

    #[test]
    fn a_bad_value_is_named_by_field_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.lock");
        std::fs::write(&path, lock_text().replacen("\"10.255.0.1\"", "\"10.255.0.x\"", 1)).unwrap();
        let e = Lock::load(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: nodes[a].switch_ip: `10.255.0.x` is not an IPv4 address; fix it or delete it to allocate afresh",
                path.display()
            )
        );
        let e = refusal(&lock_text().replacen("\"10.0.0.0/8\"", "\"ten\\u001b[2J\"", 1));
        assert!(e.contains(r"cidr: `ten\u{1b}[2J` is not an IPv4 CIDR"), "{e}");
        let e = refusal(&lock_text().replacen("\"version\": 1", "\"version\": \"1\"", 1));
        assert!(e.contains("version: `1` is not a version number"), "{e}");
        let e = refusal(&lock_text().replacen("\"node_prefix\": 16", "\"node_prefix\": 33", 1));
        assert!(e.contains("node_prefix: `33` is not a prefix length in 0..=32"), "{e}");
        let e = refusal(&lock_text().replacen("\"id\": 1,", "\"id\": -1,", 1));
        assert!(e.contains("nodes[a].id: `-1` is not a switch id"), "{e}");
        let e = refusal(&lock_text().replacen("\"switch_cidr\"", "\"switch_cidr_\"", 1));
        assert!(e.contains("unknown field `switch_cidr_`"), "{e}");
        let e = refusal(r#"{"version": 1, "cidr": "10.0.0.0/8", "node_prefix": 16, "switch_cidr": "10.255.0.0/16"}"#);
        assert!(e.contains("missing field `nodes`"), "{e}");
    }

    #[test]
    fn a_lock_whose_nodes_is_a_list_says_so() {
        let e = refusal(
            r#"{"version": 1, "cidr": "10.0.0.0/8", "node_prefix": 16, "switch_cidr": "10.255.0.0/16", "nodes": [1]}"#,
        );
        assert!(e.contains("nodes: is a list; expected an object from node names to allocations"), "{e}");
        let e = refusal("[1, 2]");
        assert!(e.contains(": is a list; expected a JSON object"), "{e}");
    }

    #[test]
    fn escape_sequences_in_a_lock_never_reach_the_terminal() {
        let red = "\"\\u001b[31mRED\\nFORGED: lock ok\": 1,";
        let e = refusal(&lock_text().replacen("\"version\": 1,", &format!("\"version\": 1, {red}"), 1));
        assert!(e.contains(r"unknown field `\u{1b}[31mRED\nFORGED: lock ok`"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        let osc = "\"\\u001b]0;owned\\u0007\": null,";
        let e = refusal(&lock_text().replacen("\"nodes\"", &format!("{osc} \"nodes\""), 1));
        assert!(e.contains(r"unknown field `\u{1b}]0;owned\u{7}`"), "{e}");
        let e = refusal(&lock_text().replacen(
            "\"a\":",
            "\"a\\u001b[2J\": {\"id\": 9, \"subnet\": \"10.9.0.1/16\", \"switch_ip\": \"10.255.0.9\"}, \"c\":",
            1,
        ));
        assert!(e.contains(r"node `a\u{1b}[2J` has subnet"), "{e}");
        let e = refusal("{\"version\": 1, \"\u{1b}]0;x\u{7}\"");
        assert!(e.contains("fix it or delete it"), "{e}");
    }

    #[test]
    fn only_a_regular_file_is_read_as_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let as_dir = dir.path().join("dir.lock");
        std::fs::create_dir(&as_dir).unwrap();
        let e = Lock::load(&as_dir).unwrap_err().to_string();
        assert!(e.contains("is a directory, not a regular file"), "{e}");

        let e = Lock::load(Path::new("/dev/null")).unwrap_err().to_string();
        assert!(e.contains("is a device, not a regular file"), "{e}");

        let fifo = dir.path().join("fifo.lock");
        if std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
            // Reading a FIFO would block until someone writes to it: refused before it is opened.
            let e = Lock::load(&fifo).unwrap_err().to_string();
            assert!(e.contains("is a FIFO, not a regular file"), "{e}");
        }

        let target = dir.path().join("elsewhere.lock");
        std::fs::write(&target, lock_text()).unwrap();
        let link = dir.path().join("vxmesh.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Lock::load(&link).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
    }

    #[test]
    fn saving_follows_no_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vxmesh.lock");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        // The name the old code wrote to first, and a link at the lock path itself.
        let guessable = path.with_extension(format!("lock.tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &guessable).unwrap();
        let lock = sample();
        lock.save(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(Lock::load(&path).unwrap(), Some(lock.clone()));

        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        lock.save(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious\n",
            "the link is replaced, not written through"
        );
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 3, "the lock, the victim, the planted link; no temporary file: {names:?}");
    }

    #[test]
    fn the_guard_refuses_links_and_fifos_and_reports_a_holder() {
        let dir = tempfile::tempdir().unwrap();
        let inventory = dir.path().join("v.yaml");
        let held = Guard::acquire(&inventory, true, |_| panic!("free: no wait")).unwrap();
        assert_eq!(held.path(), dir.path().join("v.lock.guard"));
        let e = Guard::acquire(&inventory, true, |_| panic!("--no-wait never waits")).unwrap_err();
        assert!(matches!(e, Error::Busy { .. }), "{e}");
        assert!(e.to_string().starts_with("another vxmesh command is working on"), "{e}");
        drop(held);
        assert!(Guard::acquire(&inventory, true, |_| {}).is_ok(), "dropping the guard releases it");

        let other = dir.path().join("w.yaml");
        let nologin = dir.path().join("nologin");
        std::os::unix::fs::symlink(&nologin, guard_path(&other)).unwrap();
        let e = Guard::acquire(&other, false, |_| {}).unwrap_err().to_string();
        assert!(e.contains("w.lock.guard: is a symbolic link, not a regular file"), "{e}");
        assert!(!nologin.exists(), "nothing is created where the link points");

        let third = dir.path().join("x.yaml");
        if std::process::Command::new("mkfifo").arg(guard_path(&third)).status().is_ok_and(|s| s.success()) {
            let e = Guard::acquire(&third, false, |_| {}).unwrap_err().to_string();
            assert!(e.contains("x.lock.guard: is a FIFO, not a regular file"), "{e}");
        }
    }
}
