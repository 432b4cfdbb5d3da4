//! Kernel settings: IP forwarding first, then per-device settings (reverse-path filtering) once the devices exist.

use serde::Serialize;

use super::core::{Component, Ctx, Need, Phase, Step, need};
use crate::cmd;
use crate::facts::HostFacts;
use crate::plan::{NodePlan, Sysctl};
use crate::shell::{Stmt, Word, join};

pub struct Kernel<'a> {
    pub node: &'a NodePlan,
}

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename = "sysctl")]
pub struct SetSysctl {
    pub key: String,
    pub value: String,
}

impl Component for Kernel<'_> {
    fn name(&self) -> &'static str {
        "kernel"
    }

    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        vec![need("sysctl", "procps", "procps-ng"), need("ip", "iproute2", "iproute")]
    }

    fn diff(&self, facts: &HostFacts, _: &Ctx) -> Vec<Step> {
        let missing = |s: &&Sysctl| facts.sysctls.get(&s.key) != Some(&s.value);
        self.node
            .sysctls
            .iter()
            .filter(missing)
            .map(|s| {
                // Per-device keys wait until the devices exist.
                let phase = if s.key.starts_with("net.ipv4.conf.") { Phase::Devices } else { Phase::Host };
                let c = Stmt::Run(cmd![
                    "sysctl",
                    "-qw",
                    join([Word::Data(s.key.clone()), "=".into(), Word::Data(s.value.clone())])
                ]);
                Step::new(
                    phase,
                    self.name(),
                    format!("set {} = {}", s.key, s.value),
                    SetSysctl { key: s.key.clone(), value: s.value.clone() },
                    vec![c],
                )
            })
            .collect()
    }
}
