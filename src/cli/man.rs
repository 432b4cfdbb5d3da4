//! `vxmesh completions SHELL` and `vxmesh man`: the command line described for shells and for man(1).

use clap::Args;
use vxmesh::error::Error;

use super::Ctx;

#[derive(Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

impl CompletionsArgs {
    pub fn exec(&self, _: &Ctx) -> Result<i32, Error> {
        clap_complete::generate(self.shell, &mut super::definition(), "vxmesh", &mut std::io::stdout());
        Ok(0)
    }
}

#[derive(Args)]
pub struct ManArgs {}

impl ManArgs {
    pub fn exec(&self, _: &Ctx) -> Result<i32, Error> {
        let io = |source| Error::Io { action: "write the man page to", path: "stdout".into(), source };
        let mut page = vec![];
        clap_mangen::Man::new(super::definition()).render(&mut page).map_err(io)?;
        let page = title_first(&String::from_utf8_lossy(&page));
        std::io::Write::write_all(&mut std::io::stdout(), page.as_bytes()).map_err(io)?;
        Ok(0)
    }
}

/// The man page with its `.TH` title as the first line, as man(7) pages begin; clap_mangen puts the definition of
/// the apostrophe string first, which may as well come right after it.
fn title_first(page: &str) -> String {
    let mut lines: Vec<&str> = page.lines().collect();
    if let Some(at) = lines.iter().position(|l| l.starts_with(".TH ")) {
        let title = lines.remove(at);
        lines.insert(0, title);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}
