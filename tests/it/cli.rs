//! The binary as a user meets it: exit codes, error messages, the lock file, scripts that shells accept.

use crate::util::{Run, TempDir, fixtures, vxmesh, vxmesh_env};

fn dir_with(inventory: &str) -> TempDir {
    let dir = TempDir::new("cli");
    std::fs::write(dir.0.join("vxmesh.yaml"), inventory).unwrap();
    dir
}

fn example() -> TempDir {
    dir_with(&std::fs::read_to_string(fixtures().join("../../inventory.example.yaml")).unwrap())
}

#[test]
fn bad_inventory_exits_1_naming_file_line_and_value() {
    let dir = dir_with("cluster:\n  cidr: 172.16.0.0/12\n  vni: 99999999\nnodes: [{name: a, host: 10.0.0.1}]\n");
    for cmd in [&["plan", "--offline"][..], &["render", "a"], &["up"], &["verify"], &["status"], &["down"]] {
        let r = vxmesh(&dir.0, cmd);
        assert_eq!(r.code, 1, "{r}");
        assert!(r.stderr.contains("vxmesh.yaml:3:8: cluster.vni: `99999999` is out of range"), "{r}");
        assert!(r.stdout.is_empty(), "{r}");
    }
    assert!(!dir.0.join("vxmesh.lock").exists(), "a bad inventory writes no lock");
}

#[test]
fn missing_inventory_says_which_file() {
    let dir = TempDir::new("cli-missing");
    let r = vxmesh(&dir.0, &["plan", "--offline", "-i", "nope.yaml"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("cannot read the inventory `nope.yaml`"), "{r}");
    assert!(r.stderr.contains("write one with `vxmesh init --host ADDRESS"), "a newcomer learns the next step: {r}");
    std::fs::create_dir(dir.0.join("dir.yaml")).unwrap();
    let r = vxmesh(&dir.0, &["plan", "--offline", "-i", "dir.yaml"]);
    assert!(!r.stderr.contains("vxmesh init"), "only a missing file gets the hint: {r}");
}

/// A script that asked for `--json` gets the envelope even when the command line is wrong, naming the command.
#[test]
fn bad_usage_under_json_is_a_json_error() {
    let dir = example();
    let r = vxmesh(&dir.0, &["lab", "create", "--json", "--nodes", "many"]);
    assert_eq!(r.code, 1, "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
    assert_eq!(v["ok"], false, "{r}");
    assert_eq!(v["command"], "lab create", "{r}");
    assert_eq!(v["error"]["exit_code"], 1, "{r}");
    assert!(v["error"]["message"].as_str().unwrap().contains("invalid value 'many' for '--nodes <NODES>'"), "{r}");
    let r = vxmesh(&dir.0, &["plan", "--no-such-flag"]);
    assert!(r.stdout.is_empty() && r.stderr.contains("unexpected argument"), "without --json, text: {r}");
}

#[test]
fn bad_usage_exits_1_and_help_exits_0() {
    let dir = example();
    let r = vxmesh(&dir.0, &["plan", "--no-such-flag"]);
    assert_eq!(r.code, 1, "{r}");
    let r = vxmesh(&dir.0, &["--help"]);
    assert_eq!(r.code, 0, "{r}");
    for cmd in ["plan", "up", "verify", "status", "down", "add-node", "remove-node", "render", "lab"] {
        assert!(r.stdout.contains(cmd), "help lists `{cmd}`:\n{r}");
    }
}

#[test]
fn render_unknown_node_lists_the_known_ones() {
    let r = vxmesh(&example().0, &["render", "vm9"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("no node named `vm9` in the inventory (nodes: vm1, vm2, vm3)"), "{r}");
}

/// Hosts on loopback with nothing listening on their SSH port: commands fail fast without sending anything away.
const CLOSED_HOSTS: &str = "cluster:\n  cidr: 172.16.0.0/12\nssh:\n  port: 9\nnodes:\n  - name: vm1\n    host: 127.0.0.11\n    underlay_ip: 192.0.2.1\n  - name: vm2\n    host: 127.0.0.12\n    underlay_ip: 192.0.2.2\n  - name: vm3\n    host: 127.0.0.13\n    underlay_ip: 192.0.2.3\n";

#[test]
fn showing_the_plan_writes_no_lock() {
    let dir = example();
    for cmd in [&["plan", "--offline"][..], &["plan", "--offline", "--json"], &["render", "vm1"]] {
        let r = vxmesh(&dir.0, cmd);
        assert_eq!(r.code, 0, "{r}");
    }
    assert!(!dir.0.join("vxmesh.lock").exists(), "render and plan --offline compute the address plan in memory");
}

#[test]
fn lock_is_written_once_and_then_kept() {
    let dir = dir_with(CLOSED_HOSTS);
    let first = vxmesh(&dir.0, &["status", "--connect-timeout", "2"]);
    assert_eq!(first.code, 2, "no host answers: {first}");
    let lock = std::fs::read_to_string(dir.0.join("vxmesh.lock")).unwrap();
    let modified = std::fs::metadata(dir.0.join("vxmesh.lock")).unwrap().modified().unwrap();
    // Reordering the nodes keeps every allocation: the lock decides.
    let inv = std::fs::read_to_string(dir.0.join("vxmesh.yaml")).unwrap();
    let vm2 = "  - name: vm2\n    host: 127.0.0.12\n    underlay_ip: 192.0.2.2\n";
    let reordered = inv.replace(vm2, "").replace("nodes:\n", &format!("nodes:\n{vm2}"));
    assert_ne!(inv, reordered);
    std::fs::write(dir.0.join("vxmesh.yaml"), reordered).unwrap();
    let second = vxmesh(&dir.0, &["status", "--connect-timeout", "2"]);
    assert_eq!(second.code, 2, "{second}");
    assert_eq!(std::fs::read_to_string(dir.0.join("vxmesh.lock")).unwrap(), lock);
    assert_eq!(
        std::fs::metadata(dir.0.join("vxmesh.lock")).unwrap().modified().unwrap(),
        modified,
        "an unchanged lock is not rewritten"
    );
    let offline = vxmesh(&dir.0, &["plan", "--offline"]);
    let table_line = |out: &str, node: &str| out.lines().find(|l| l.starts_with(node)).unwrap().to_string();
    let kept = vxmesh::model::ipam::Lock::load(&dir.0.join("vxmesh.lock")).unwrap().unwrap();
    let vm2_subnet = kept.nodes["vm2"].subnet.to_string();
    assert!(table_line(&offline.stdout, "vm2").contains(&vm2_subnet), "vm2 keeps {vm2_subnet}: {offline}");
}

#[test]
fn rendered_scripts_are_valid_posix_sh() {
    let dir = example();
    for node in ["vm1", "vm2", "vm3"] {
        let r = vxmesh(&dir.0, &["render", node]);
        assert_eq!(r.code, 0, "{r}");
        let path = dir.0.join(format!("{node}.sh"));
        std::fs::write(&path, &r.stdout).unwrap();
        let check = std::process::Command::new("sh").arg("-n").arg(&path).output().unwrap();
        assert!(check.status.success(), "sh -n {node}.sh: {}", String::from_utf8_lossy(&check.stderr));
    }
}

#[test]
fn offline_plan_shows_the_nodes_limit_takes_and_refuses_a_pattern_that_takes_none() {
    let dir = example();
    let r = vxmesh(&dir.0, &["plan", "--offline", "--limit", "vm2"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("=== vm2 ("), "{r}");
    assert!(!r.stdout.contains("=== vm1 (") && !r.stdout.contains("=== vm3 ("), "{r}");
    assert!(r.stdout.contains("add tunnel vx-vm1"), "vm2 still planned with all its peers: {r}");
    let r = vxmesh(&dir.0, &["plan", "--offline", "--limit", "nope"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("nope"), "{r}");
    let r = vxmesh(&dir.0, &["plan", "--offline", "--json", "--limit", "vm3"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> =
        v["nodes"].as_array().unwrap().iter().map(|n| n["desired"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["vm3"], "{r}");
}

#[test]
fn json_plan_carries_steps_with_commands() {
    let r = vxmesh(&example().0, &["plan", "--offline", "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let steps = v["nodes"][0]["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["description"].is_string() && !s["commands"].as_array().unwrap().is_empty()));
    assert_eq!(v["nodes"][0]["desired"]["subnet"], "172.18.0.0/16");
}

#[test]
fn a_second_command_on_the_same_inventory_waits_or_refuses() {
    let dir = dir_with(CLOSED_HOSTS);
    // Another vxmesh command holds the inventory: this test takes its guard as a running command would.
    let guard = std::fs::File::create(dir.0.join("vxmesh.lock.guard")).unwrap();
    guard.lock().unwrap();
    let r = vxmesh(&dir.0, &["status", "--no-wait", "--connect-timeout", "2"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("another vxmesh command is working on vxmesh.yaml"), "{r}");
    assert!(!dir.0.join("vxmesh.lock").exists(), "nothing was done");
    // Without --no-wait it waits, says so, and goes on once the first command ends.
    let bin = env!("CARGO_BIN_EXE_vxmesh");
    let child = std::process::Command::new(bin)
        .args(["status", "--connect-timeout", "2"])
        .current_dir(&dir.0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert!(!dir.0.join("vxmesh.lock").exists(), "the second command waited");
    drop(guard);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("waiting for it to finish"), "{stderr}");
    assert_eq!(out.status.code(), Some(2), "then it ran (no host answers on loopback): {stderr}");
    assert!(dir.0.join("vxmesh.lock").exists());
}

#[test]
fn exit_codes_are_as_documented() {
    let dir = dir_with(CLOSED_HOSTS);
    for (args, code) in [
        (&["status", "--connect-timeout", "2"][..], 2),
        (&["verify", "--connect-timeout", "2"], 2),
        (&["up", "--connect-timeout", "2"], 2),
        (&["down", "--yes", "--connect-timeout", "2"], 2),
        (&["plan", "--offline"], 0),
        (&["nonsense"], 1),
    ] {
        let r = vxmesh(&dir.0, args);
        assert_eq!(r.code, code, "{r}");
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for row in ["| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 130 |"] {
        assert!(readme.contains(row), "README's exit code table has {row}");
    }
}

#[test]
fn the_boot_unit_passes_systemd_analyze_verify() {
    let dir = TempDir::new("unit");
    let verify = |text: &str| {
        let path = dir.0.join("vxmesh.service");
        std::fs::write(&path, text).unwrap();
        let out =
            std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let unit = vxmesh::components::boot::unit();
    let (ok, stderr) = verify(&unit);
    assert!(ok, "{stderr}");
    // The check is real: a unit systemd could not run is refused.
    let (ok, stderr) = verify(&unit.replace("ExecStart=/bin/sh", "ExecStart=/nonexistent/sh"));
    assert!(!ok, "{stderr}");
}

/// `--limit`: a pattern that matches no node is refused before any host is contacted (a typo must not reach
/// nobody and call it success), and commands that work on every host refuse it.
#[test]
fn limit_must_match_a_node_and_is_refused_where_every_host_changes() {
    let dir = example();
    let r = vxmesh(&dir.0, &["status", "--limit", "vm9*", "--connect-timeout", "1"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("--limit `vm9*` matches no node; the nodes are vm1, vm2, vm3"), "{r}");
    for cmd in [&["down", "--yes", "--limit", "vm1"][..], &["remove-node", "vm1", "--yes", "--limit", "vm1"]] {
        let r = vxmesh(&dir.0, cmd);
        assert_eq!(r.code, 1, "{r}");
        assert!(r.stderr.contains("works on every host") && r.stderr.contains("--limit is for plan"), "{r}");
    }
    // Refused before the question, which would otherwise ask about every host first.
    for cmd in [&["down", "--limit", "vm1"][..], &["remove-node", "vm1", "--limit", "vm1"]] {
        let r = vxmesh(&dir.0, cmd);
        assert_eq!(r.code, 1, "{r}");
        assert!(r.stderr.contains("works on every host") && !r.stderr.contains("asks before"), "{r}");
    }
}

/// One JSON envelope for every command: `schema`, `command` and `ok` always there; with `--json`, an error is
/// JSON on stdout too, with its message and exit code.
#[test]
fn every_json_output_has_the_same_envelope_and_errors_are_json_too() {
    let dir = example();
    for (args, command) in [
        (&["plan", "--offline", "--json"][..], "plan"),
        (&["render", "vm2", "--json"], "render"),
        (&["lab", "list", "--json"], "lab list"),
    ] {
        let r = vxmesh(&dir.0, args);
        assert_eq!(r.code, 0, "{r}");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
        assert_eq!(
            (v["schema"].as_u64(), v["command"].as_str(), v["ok"].as_bool()),
            (Some(1), Some(command), Some(true)),
            "{r}"
        );
    }
    let r = vxmesh(&dir.0, &["render", "vm9", "--json"]);
    assert_eq!(r.code, 1, "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
    assert_eq!(
        (v["ok"].as_bool(), v["command"].as_str(), v["error"]["exit_code"].as_i64()),
        (Some(false), Some("render"), Some(1))
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("vm9"), "{r}");
}

/// Runs vxmesh on a terminal: a pseudo-terminal made by util-linux `script`, with `input` typed on it. What the
/// terminal showed (stdout and stderr together) comes back as stdout.
fn on_terminal(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)], input: &str) -> Run {
    use std::io::Write;
    let quoted: Vec<String> =
        std::iter::once(env!("CARGO_BIN_EXE_vxmesh")).chain(args.iter().copied()).map(|a| format!("'{a}'")).collect();
    let mut child = std::process::Command::new("timeout")
        .args(["--kill-after=5", "60", "script", "-q", "-e", "-c", &quoted.join(" "), "/dev/null"])
        .current_dir(dir)
        .env_remove("VXMESH_INVENTORY")
        .env("XDG_STATE_HOME", dir.join(".state"))
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env("TERM", "xterm-256color")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` makes the terminal (package bsdutils)");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        cmd: format!("(on a terminal) vxmesh {}", args.join(" ")),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn completions_define_the_function_and_name_every_command() {
    let dir = TempDir::new("completions");
    let commands = ["plan", "render", "up", "verify", "status", "down", "add-node", "remove-node", "init", "lab"];
    let r = vxmesh(&dir.0, &["completions", "bash"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("_vxmesh() {"), "{r}");
    assert!(r.stdout.contains("complete -F _vxmesh"), "{r}");
    for c in commands {
        assert!(r.stdout.contains(c), "bash completes `{c}`");
    }
    // bash reads it, and the function is there once it is sourced.
    let file = dir.0.join("vxmesh.bash");
    std::fs::write(&file, &r.stdout).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && declare -F _vxmesh", file.display()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "_vxmesh\n", "{}", String::from_utf8_lossy(&out.stderr));
    let r = vxmesh(&dir.0, &["completions", "zsh"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.starts_with("#compdef vxmesh"), "{r}");
    let r = vxmesh(&dir.0, &["completions", "fish"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("complete -c vxmesh"), "{r}");
    for c in commands {
        assert!(r.stdout.contains(&format!("-a \"{c}\"")), "fish completes `{c}`:\n{r}");
    }
    let r = vxmesh(&dir.0, &["completions", "tcsh"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("invalid value 'tcsh'"), "{r}");
}

#[test]
fn the_man_page_is_roff_naming_every_command() {
    let r = vxmesh(&TempDir::new("man").0, &["man"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.is_empty(), "{r}");
    assert!(r.stdout.starts_with(".TH vxmesh 1 "), "{r}");
    assert_eq!(r.stdout.matches(".TH ").count(), 1, "{r}");
    // The apostrophe string clap_mangen uses is still defined, after the title.
    assert!(r.stdout.contains("\n.ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n"), "{r}");
    assert!(r.stdout.contains(".SH NAME\nvxmesh \\- "), "{r}");
    for c in ["plan", "render", "up", "verify", "status", "down", "add\\-node", "remove\\-node", "init", "lab"] {
        assert!(r.stdout.contains(&format!("vxmesh\\-{c}(1)")), "the man page names `{c}`:\n{r}");
    }
    assert!(r.stdout.contains("VXMESH_INVENTORY"), "{r}");
}

#[test]
fn vxmesh_inventory_is_the_default_for_dash_i() {
    let elsewhere = example();
    let inv = elsewhere.0.join("vxmesh.yaml");
    let inv = inv.to_str().unwrap();
    let here = TempDir::new("cli-env");
    let plain = vxmesh(&here.0, &["plan", "--offline"]);
    assert_eq!(plain.code, 1, "{plain}");
    assert!(plain.stderr.contains("cannot read the inventory `vxmesh.yaml`"), "{plain}");
    let given = vxmesh(&here.0, &["plan", "--offline", "-i", inv]);
    assert_eq!(given.code, 0, "{given}");
    let from_env = vxmesh_env(&here.0, &["plan", "--offline"], &[("VXMESH_INVENTORY", inv)]);
    assert_eq!(from_env.code, 0, "{from_env}");
    assert_eq!(from_env.stdout, given.stdout);
    // -i wins over the environment.
    let r = vxmesh_env(&here.0, &["render", "vm1", "-i", inv], &[("VXMESH_INVENTORY", "nope.yaml")]);
    assert_eq!(r.code, 0, "{r}");
    let r = vxmesh_env(&here.0, &["render", "vm1"], &[("VXMESH_INVENTORY", "nope.yaml")]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("cannot read the inventory `nope.yaml`"), "{r}");
    // --help says so (read as words: clap wraps its lines).
    let help = vxmesh(&here.0, &["--help"]);
    let words = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("[env: VXMESH_INVENTORY=]"), "{help}");
    assert!(words.contains("Without -i: the file named by VXMESH_INVENTORY, else vxmesh.yaml"), "{help}");
}

#[test]
fn no_color_leaves_no_escape_on_a_terminal() {
    let dir = example();
    // The check is real: on a terminal, clap colours its help.
    let coloured = on_terminal(&dir.0, &["--help"], &[], "");
    assert_eq!(coloured.code, 0, "{coloured}");
    assert!(coloured.stdout.contains('\x1b'), "{coloured}");
    for args in [&["--help"][..], &["nonsense"], &["plan", "--offline"], &["render", "vm9"]] {
        let r = on_terminal(&dir.0, args, &[("NO_COLOR", "1")], "");
        assert!(r.stdout.len() > 20, "{r}");
        assert!(!r.stdout.contains('\x1b'), "{r}");
    }
    // Nor when the output is not a terminal.
    for args in [&["--help"][..], &["nonsense"], &["plan", "--offline"]] {
        let r = vxmesh(&dir.0, args);
        assert!(!r.stdout.contains('\x1b') && !r.stderr.contains('\x1b'), "{r}");
    }
}

#[test]
fn init_writes_an_inventory_every_command_accepts() {
    let dir = TempDir::new("init");
    let r = vxmesh(&dir.0, &["init", "--host", "192.0.2.1", "--host", "web1=192.0.2.2", "--host", "192.0.2.3"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        r.stdout,
        "wrote vxmesh.yaml: cluster `vxmesh`, 3 nodes (node1 192.0.2.1, web1 192.0.2.2, node3 192.0.2.3)\n\
         names across hosts: on (NAME.NODE.mesh, NAME.mesh); the hosts need dnsmasq-base and curl\n\
         next: vxmesh plan --offline -i vxmesh.yaml, then vxmesh up -i vxmesh.yaml\n"
    );
    let written = std::fs::read_to_string(dir.0.join("vxmesh.yaml")).unwrap();
    for line in ["  cidr: 172.16.0.0/12", "# vni: 42", "# mtu: auto", "# firewall: auto", "# encryption: none"] {
        assert!(written.contains(line), "{line}:\n{written}");
    }
    assert!(written.ends_with("  - name: node3\n    host: 192.0.2.3\n"), "{written}");
    let plan = vxmesh(&dir.0, &["plan", "--offline"]);
    assert_eq!(plan.code, 0, "{plan}");
    assert!(plan.stdout.starts_with("vxmesh plan (offline): cluster `vxmesh`, 3 nodes, 3 tunnel pairs"), "{plan}");
    for node in ["node1", "web1", "node3"] {
        assert!(plan.stdout.contains(&format!("\n=== {node} (")), "{plan}");
    }

    // An existing file is kept...
    let r = vxmesh(&dir.0, &["init", "--host", "198.51.100.1"]);
    assert_eq!(r.code, 1, "{r}");
    assert_eq!(r.stderr, "error: vxmesh.yaml already exists; nothing was written (--force replaces it)\n");
    assert!(r.stdout.is_empty(), "{r}");
    assert_eq!(std::fs::read_to_string(dir.0.join("vxmesh.yaml")).unwrap(), written);
    // ...unless --force.
    let r =
        vxmesh(&dir.0, &["init", "--host", "198.51.100.1", "--name", "prod", "--cidr", "10.8.0.0/16", "--force", "-q"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.stdout, "wrote vxmesh.yaml\n");
    let r = vxmesh(&dir.0, &["plan", "--offline", "-q"]);
    assert_eq!(r.stdout, "vxmesh plan (offline): cluster `prod`, 1 node, 0 tunnel pairs, cluster CIDR 10.8.0.0/16\n");

    // -o, and VXMESH_INVENTORY as the default place.
    let r = vxmesh(&dir.0, &["init", "--host", "192.0.2.9", "-o", "other.yaml"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(vxmesh(&dir.0, &["plan", "--offline", "-i", "other.yaml"]).code, 0);
    let r = vxmesh_env(&dir.0, &["init", "--host", "192.0.2.9"], &[("VXMESH_INVENTORY", "env.yaml")]);
    assert_eq!(r.code, 0, "{r}");
    assert!(dir.0.join("env.yaml").exists());
}

#[test]
fn init_refuses_what_the_validator_refuses_and_writes_nothing() {
    let dir = TempDir::new("init-bad");
    for (args, message) in [
        (
            &["init", "--host", "192.0.2.1", "--host", "192.0.2.1"][..],
            "nodes[node2].host: `192.0.2.1` is also the host of node `node1`",
        ),
        (
            &["init", "--host", "web/1=192.0.2.1"],
            "nodes.name: `web/1` may use only letters, digits, `-` and `_`, starting with a letter or digit",
        ),
        (
            &["init", "--host", "172.20.0.1"],
            "nodes[node1].host: `172.20.0.1` lies inside cluster.cidr `172.16.0.0/12`; a tunnel endpoint must be \
             outside the overlay, or the host would route its own tunnel into sw0\n\
             the cluster CIDR must not hold the hosts' own addresses: pass one that does not, e.g. `--cidr \
             10.200.0.0/16`",
        ),
        (
            &["init", "--host", "192.0.2.1", "--cidr", "10.0.0.1/8"],
            "cluster.cidr: `10.0.0.1/8` has host bits set; did you mean `10.0.0.0/8`?",
        ),
    ] {
        let r = vxmesh(&dir.0, args);
        assert_eq!(r.code, 1, "{r}");
        assert_eq!(r.stderr, format!("error: init: nothing written to vxmesh.yaml: {message}\n"), "{r}");
        assert!(r.stdout.is_empty(), "{r}");
        assert!(!dir.0.join("vxmesh.yaml").exists(), "{r}");
    }
    let r = vxmesh(&dir.0, &["init"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("--host"), "{r}");
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0, "nothing at all was written");
}

#[test]
fn down_and_remove_node_refuse_without_a_terminal_unless_yes() {
    let dir = dir_with(CLOSED_HOSTS);
    let r = vxmesh(&dir.0, &["down", "--connect-timeout", "2"]);
    assert_eq!(r.code, 1, "{r}");
    assert_eq!(
        r.stderr,
        "error: down asks before it removes anything, and stdin is not a terminal; pass --yes to go ahead without \
         asking. Nothing was done. (The question: Remove the mesh from 3 hosts (vm1, vm2, vm3)?)\n"
    );
    assert!(r.stdout.is_empty(), "{r}");
    let r = vxmesh(&dir.0, &["remove-node", "vm3", "--connect-timeout", "2"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stderr
            .starts_with("error: remove-node asks before it removes anything, and stdin is not a terminal; pass --yes"),
        "{r}"
    );
    assert!(
        r.stderr.contains(
            "Remove node vm3 (127.0.0.13) from the mesh, withdrawing it from 2 other hosts, and tear it down?"
        ),
        "{r}"
    );
    // Touching nothing: no lock, no guard file, the inventory as it was.
    let files: Vec<String> =
        std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(files, ["vxmesh.yaml"]);
    assert_eq!(std::fs::read_to_string(dir.0.join("vxmesh.yaml")).unwrap(), CLOSED_HOSTS);
    // An unknown node is said as such, without a question.
    let r = vxmesh(&dir.0, &["remove-node", "vm9"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("no node named `vm9`"), "{r}");

    // --yes (or -y) gets past the question: then the hosts are tried, and none answers.
    for yes in ["--yes", "-y"] {
        let r = vxmesh(&dir.0, &["down", yes, "--connect-timeout", "2"]);
        assert_eq!(r.code, 2, "{r}");
        assert!(!r.stderr.contains("--yes"), "{r}");
        assert!(r.stdout.contains("3 hosts: 0 removed, 0 ok, 3 failed"), "{r}");
    }
    let r = vxmesh(&dir.0, &["remove-node", "vm3", "-y", "--connect-timeout", "2"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("vm3 cannot be reached"), "{r}");
    assert!(std::fs::read_to_string(dir.0.join("vxmesh.yaml")).unwrap().contains("vm3"), "nothing was changed");
}

#[test]
fn on_a_terminal_down_asks_and_only_yes_goes_on() {
    let dir = dir_with(CLOSED_HOSTS);
    for answer in ["n\n", "\n", "nope\n", ""] {
        let r = on_terminal(&dir.0, &["down", "--connect-timeout", "2"], &[], answer);
        assert_eq!(r.code, 1, "{answer:?}: {r}");
        assert!(r.stdout.contains("Remove the mesh from 3 hosts (vm1, vm2, vm3)? [y/N] "), "{r}");
        assert!(r.stdout.contains("error: down: not confirmed; nothing was done"), "{r}");
        assert!(!dir.0.join("vxmesh.lock").exists(), "{r}");
    }
    for answer in ["y\n", "YES\n"] {
        let r = on_terminal(&dir.0, &["down", "--connect-timeout", "2", "-q"], &[], answer);
        assert_eq!(r.code, 2, "{answer:?}: {r}");
        assert!(r.stdout.contains("3 hosts: 0 removed, 0 ok, 3 failed"), "{r}");
    }
    let r = on_terminal(&dir.0, &["remove-node", "vm2", "--connect-timeout", "2"], &[], "y\n");
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stdout.contains("vm2 cannot be reached"), "{r}");
}

#[test]
fn quiet_prints_the_result_line_only() {
    let dir = example();
    let full = vxmesh(&dir.0, &["plan", "--offline"]);
    let r = vxmesh(&dir.0, &["plan", "--offline", "-q"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        r.stdout,
        "vxmesh plan (offline): cluster `demo`, 3 nodes, 3 tunnel pairs, cluster CIDR 172.16.0.0/12\n"
    );
    assert_eq!(r.stdout.lines().next(), full.stdout.lines().next());
    assert!(r.stderr.is_empty(), "{r}");
    // What a command is asked for is not chatter: render -q is render.
    let r = vxmesh(&dir.0, &["render", "vm2", "--quiet"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.stdout, vxmesh(&dir.0, &["render", "vm2"]).stdout);
    let r = vxmesh(&dir.0, &["plan", "--offline", "-q", "-v"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("cannot be used with"), "{r}");

    // Hosts that fail: one line per host on stderr, the result line on stdout.
    let dir = dir_with(CLOSED_HOSTS);
    let r = vxmesh(&dir.0, &["status", "-q", "--connect-timeout", "2"]);
    assert_eq!(r.code, 2, "{r}");
    assert_eq!(r.stdout, "not clean: 3 of 3 hosts\n");
    let hosts = [("vm1", "127.0.0.11"), ("vm2", "127.0.0.12"), ("vm3", "127.0.0.13")];
    let one_line_each = |r: &Run| {
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 3, "{r}");
        for (line, (node, host)) in lines.iter().zip(hosts) {
            assert!(line.starts_with(&format!("{node} ({host}): cannot connect to root@{host}:9")), "{r}");
        }
    };
    one_line_each(&r);
    let r = vxmesh(&dir.0, &["up", "-q", "--connect-timeout", "2"]);
    assert_eq!(r.code, 2, "{r}");
    assert_eq!(r.stdout, "3 hosts: 0 changed, 0 ok, 3 failed; verify skipped: not every host was built\n");
    one_line_each(&r);
    let r = vxmesh(&dir.0, &["down", "-q", "--yes", "--connect-timeout", "2"]);
    assert_eq!(r.code, 2, "{r}");
    assert_eq!(r.stdout, "3 hosts: 0 removed, 0 ok, 3 failed\n");
    one_line_each(&r);
}

#[test]
fn verbose_adds_the_facts_scripts_to_the_offline_plan() {
    let dir = example();
    let plain = vxmesh(&dir.0, &["plan", "--offline"]);
    let r = vxmesh(&dir.0, &["plan", "--offline", "-v"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(!plain.stdout.contains("facts script"), "{plain}");
    let mut rest = r.stdout.as_str();
    for (node, host) in [("vm1", "192.168.122.81"), ("vm2", "192.168.122.82"), ("vm3", "192.168.122.83")] {
        let build = vxmesh(&dir.0, &["render", node]).stdout;
        let facts = vxmesh(&dir.0, &["facts-script", node]).stdout;
        let heading = format!("=== {node} ({host}): facts script (read-only, sent first by up and plan) ===\n");
        // Each node: its build script, then the facts script, exactly as `render` and `facts-script` print them.
        let at = rest.find(&build).unwrap_or_else(|| panic!("{node}'s build script:\n{r}"));
        rest = &rest[at + build.len()..];
        let at = rest.find(&format!("{heading}{facts}")).unwrap_or_else(|| panic!("{node}'s facts script:\n{r}"));
        rest = &rest[at..];
    }
    // Nothing else changed.
    let mut without = r.stdout.clone();
    for node in ["vm1", "vm2", "vm3"] {
        let facts = vxmesh(&dir.0, &["facts-script", node]).stdout;
        let start = without.find(&format!("\n=== {node} (192.168.122.8")).unwrap();
        let heading = without[start..].find(": facts script").unwrap() + start;
        let heading_start = without[..heading].rfind("\n=== ").unwrap();
        let end = without[heading..].find('\n').unwrap() + heading + 1 + facts.len();
        without.replace_range(heading_start..end, "");
    }
    assert_eq!(without, plain.stdout);
}

/// Tables fit the terminal: on one 70 columns wide the last column wraps and no line is longer; without a
/// terminal (a pipe, a file) nothing wraps, one line per host.
#[test]
fn tables_fit_the_terminal_and_never_wrap_into_a_pipe() {
    let dir = dir_with(CLOSED_HOSTS);
    let cmd = format!("stty cols 70; '{}' up --no-verify --connect-timeout 2", env!("CARGO_BIN_EXE_vxmesh"));
    let out = std::process::Command::new("timeout")
        .args(["--kill-after=5", "60", "script", "-q", "-e", "-c", &cmd, "/dev/null"])
        .current_dir(&dir.0)
        .env("XDG_STATE_HOME", dir.0.join(".state"))
        .env_remove("VXMESH_INVENTORY")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // Progress bars redraw with escapes; the table is what follows the header.
    let table: Vec<&str> = text[text.find("HOST").expect("a table")..].lines().take(7).collect();
    assert!(table.iter().all(|l| l.trim_end().chars().count() <= 70), "{text}");
    assert!(table.iter().any(|l| l.trim_start().starts_with("Connection refused")), "the reason wraps: {text}");
    let r = vxmesh(&dir.0, &["up", "--no-verify", "--connect-timeout", "2"]);
    let rows: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("vm")).collect();
    assert_eq!(rows.len(), 3, "{r}");
    assert!(rows.iter().all(|l| l.contains("failed") && l.contains("Connection refused")), "{r}");
}

/// `add-node` refuses a bad value before it writes or contacts anything, naming the new entry's field and value;
/// a value that tries to smuggle a second field in is one (bad) value, never two fields.
#[test]
fn add_node_refuses_bad_values_before_touching_anything() {
    let text = "cluster:\n  cidr: 172.16.0.0/12\n  encryption: wireguard\n  backend: linux\nnodes: [{name: a, host: 127.0.0.1, underlay_ip: 192.0.2.1}, {name: b, host: 127.0.0.2, underlay_ip: 192.0.2.2}]\n";
    let dir = dir_with(text);
    let cases: [(&[&str], &str); 4] = [
        (&["--public-ip", "10.0.0.999"], "nodes[c].public_ip: `10.0.0.999`"),
        (&["--site", "two words"], "nodes[c].site: `two words`"),
        (
            &["--underlay-ip", "192.0.2.3, public_ip: 10.9.9.9"],
            "nodes[c].underlay_ip: `192.0.2.3, public_ip: 10.9.9.9`",
        ),
        (&["--site", "x}, {name: d, host: 127.0.0.4"], "nodes[c].site: `x}, {name: d, host: 127.0.0.4`"),
    ];
    for (extra, expected) in cases {
        // Loopback only, should anything be contacted by mistake.
        let mut args = vec!["add-node", "c", "--host", "127.0.0.3"];
        args.extend_from_slice(extra);
        if !extra.contains(&"--underlay-ip") {
            args.extend(["--underlay-ip", "192.0.2.3"]);
        }
        let r = vxmesh(&dir.0, &args);
        assert_eq!(r.code, 1, "{extra:?}: {r}");
        assert!(r.stderr.contains("vxmesh.yaml:5:") && r.stderr.contains(expected), "{extra:?}: {r}");
        assert_eq!(std::fs::read_to_string(dir.0.join("vxmesh.yaml")).unwrap(), text, "{extra:?}: nothing written");
        assert!(!dir.0.join("vxmesh.lock").exists(), "{extra:?}: no lock");
    }
}

/// `plan --offline`'s table: columns as wide as their widest value (IPv6 hosts are long), the IPv6 side and the
/// sites shown where some node has them, every row as long as the header.
#[test]
fn the_offline_table_fits_ipv6_hosts_and_shows_sites() {
    let dir = TempDir::new("table");
    let inv = "cluster:\n  cidr: 10.0.0.0/8\n  cidr6: \"fd42:7:1::/48\"\n  encryption: wireguard\nnodes:\n  - {name: a, host: \"2001:db8:aaaa:bbbb:cccc:dddd:eeee:1\", site: dc1, public_ip: \"2001:db8::99\"}\n  - {name: longername12, host: \"2001:db8::2\", site: dc2}\n";
    std::fs::write(dir.0.join("vxmesh.yaml"), inv).unwrap();
    let r = vxmesh(&dir.0, &["plan", "--offline"]);
    assert_eq!(r.code, 0, "{r}");
    let table: Vec<&str> = r.stdout.lines().skip(2).take(3).collect();
    let head: Vec<&str> = table[0].split("  ").filter(|c| !c.is_empty()).map(str::trim).collect();
    assert_eq!(
        head,
        [
            "NODE",
            "HOST",
            "UNDERLAY",
            "SUBNET",
            "SWITCH (sw0)",
            "SUBNET6",
            "SWITCH6 (sw0)",
            "SITE",
            "PUBLIC IP",
            "TUNNELS"
        ]
    );
    assert!(table.iter().all(|l| l.len() == table[0].len()), "{}", r.stdout);
    let a: Vec<&str> = table[1].split_whitespace().collect();
    assert_eq!(a[1], "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1");
    assert_eq!(&a[5..], ["fd42:7:1:1::/64", "fd42:7:1::1/48", "dc1", "2001:db8::99", "1"]);
    let b: Vec<&str> = table[2].split_whitespace().collect();
    assert_eq!(&b[7..], ["dc2", "-", "1"], "no public address: behind NAT");
    // The JSON says the same.
    let r = vxmesh(&dir.0, &["plan", "--offline", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let desired: Vec<&serde_json::Value> = v["nodes"].as_array().unwrap().iter().map(|n| &n["desired"]).collect();
    assert_eq!(
        (&desired[0]["site"], &desired[0]["public_ip"]),
        (&serde_json::json!("dc1"), &serde_json::json!("2001:db8::99"))
    );
    assert_eq!((&desired[1]["site"], &desired[1]["public_ip"]), (&serde_json::json!("dc2"), &serde_json::Value::Null));
}
