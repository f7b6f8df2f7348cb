//! `lockstep template`: renders a template against data offline (ESO's
//! `esoctl template` analog) with the controller's engine and functions.

use std::path::PathBuf;

use clap::Args;
use lockstep_templates::{FunctionConfig, Renderer, RendererConfig};

use crate::show;

#[derive(Args, Debug)]
pub struct TemplateArgs {
    /// A template spec (YAML: data, templateFrom, metadata, type) or a single template text.
    #[arg(long)]
    template: PathBuf,
    /// Data: a mapping of key → string, or a Secret manifest (data / stringData).
    #[arg(long)]
    data: PathBuf,
    /// Template function configuration, e.g. `-sprig.now,+eso` (docs/templates.md).
    #[arg(long, default_value = "")]
    template_functions: FunctionConfig,
    /// Print rendered values instead of their length and sha256.
    #[arg(long)]
    show_values: bool,
}

pub fn execute(args: TemplateArgs) -> anyhow::Result<()> {
    let TemplateArgs { template, data, template_functions, show_values } = args;
    let renderer = Renderer::new(RendererConfig { functions: template_functions, ..RendererConfig::default() })?;
    let rendered = lockstep_templates::cli::render_files(&renderer, &template, &data)?;
    if let Some(t) = &rendered.secret_type {
        println!("type: {t}");
    }
    for (field, map) in [("labels", &rendered.labels), ("annotations", &rendered.annotations)] {
        if !map.is_empty() {
            println!("{field}:");
            for (k, v) in map {
                println!("  {k}: {v}");
            }
        }
    }
    println!("data:");
    for (k, v) in &rendered.data {
        println!("  {k}: {}", show::value(v, show_values));
    }
    Ok(())
}
