//! The sysctl component: IP forwarding first, then per-device settings (reverse-path filtering) once the devices
//! exist. Not to be confused with the kernel data plane ([`super::linux`]).

use serde::Serialize;

use super::core::{Capabilities, Component, Ctx, Kind, Need, Phase, Piece, Step, need};
use crate::cmd;
use crate::facts::{FactsError, HostFacts, Sections};
use crate::plan::{NodePlan, Sysctl};
use crate::shell::{Stmt, Word, join};

pub struct Sysctls<'a> {
    pub node: &'a NodePlan,
}

#[derive(Debug, Serialize)]
#[serde(tag = "change", rename = "sysctl")]
pub struct SetSysctl {
    pub key: String,
    pub value: String,
}

/// The shared facts hold the sysctls (the facts script reads the plan's keys); sysctls stay at teardown.
impl Piece for Sysctls<'_> {
    fn kind(&self) -> Kind {
        Kind::Sysctl
    }

    fn gather(&self) -> Vec<Stmt> {
        vec![]
    }

    fn parse(&self, _: &Sections, _: &mut HostFacts) -> Result<(), FactsError> {
        Ok(())
    }

    fn teardown(&self, _: &HostFacts) -> Vec<Step> {
        vec![]
    }
}

impl Component for Sysctls<'_> {
    fn needs(&self, _: &HostFacts) -> Vec<Need> {
        vec![need("sysctl", "procps", "procps-ng"), need("ip", "iproute2", "iproute")]
    }

    fn preflight(&self, _: &HostFacts) -> Vec<String> {
        vec![]
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::NONE
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
                    self.kind(),
                    format!("set {} = {}", s.key, s.value),
                    SetSysctl { key: s.key.clone(), value: s.value.clone() },
                    vec![c],
                )
            })
            .collect()
    }
}
