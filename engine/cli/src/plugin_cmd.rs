//! `lockstep plugin inspect | run | test`: plugin authors' tools, running
//! components through the real host.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use lockstep_credentials::FileBackend;
use lockstep_plugin_host::wit::{self, FindRequest, MetadataPolicy, SecretRef};
use lockstep_plugin_host::{LoadedPlugin, PluginHost, PluginSource, StoreBinding};
use sha2::{Digest, Sha256};

use crate::host_args::HostArgs;
use crate::manifests::{self, Store};
use crate::{conformance, show};

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Print a component's metadata, contract version and imports.
    Inspect {
        /// The component (.wasm).
        wasm: PathBuf,
    },
    /// Make one call through the real host.
    Run(RunArgs),
    /// Replay the conformance fixtures a provider ships and check each outcome.
    Test(conformance::TestArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The component (.wasm).
    wasm: PathBuf,
    /// A SecretStore or ClusterSecretStore manifest.
    #[arg(long)]
    store: PathBuf,
    /// Remote key to read (`spec.data[].remoteRef.key`).
    #[arg(long = "ref", value_name = "KEY", conflicts_with_all = ["find_name", "find_tags", "find_path", "validate"])]
    key: Option<String>,
    /// Remote version.
    #[arg(long, requires = "key")]
    version: Option<String>,
    /// Property inside the remote value.
    #[arg(long, requires = "key")]
    property: Option<String>,
    /// Fetch metadata (tags) instead of the value (`metadataPolicy: Fetch`).
    #[arg(long, requires = "key")]
    fetch_metadata: bool,
    /// Expand the value into keys (`dataFrom[].extract`).
    #[arg(long, requires = "key")]
    extract: bool,
    /// Find secrets whose name matches this regular expression (`dataFrom[].find.name.regexp`).
    #[arg(long)]
    find_name: Option<String>,
    /// Find secrets with this tag, `KEY=VALUE` (repeatable).
    #[arg(long = "find-tag", value_name = "KEY=VALUE")]
    find_tags: Vec<String>,
    /// Find secrets under this path.
    #[arg(long)]
    find_path: Option<String>,
    /// Only validate the store.
    #[arg(long)]
    validate: bool,
    /// Namespace of the consuming ExternalSecret.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Manifests holding the Secrets and ServiceAccounts the store references
    /// (default: the store file itself).
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Write the outbound HTTP exchanges (redacted) to FILE (mode 0600).
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    record: Option<PathBuf>,
    /// Answer outbound HTTP from a recording instead of the network.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Print secret values instead of their length and sha256.
    #[arg(long)]
    show_values: bool,
    #[command(flatten)]
    host: HostArgs,
}

pub async fn execute(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Inspect { wasm } => inspect(&wasm).await,
        PluginCommand::Run(args) => run(args).await,
        PluginCommand::Test(args) => conformance::test(args).await,
    }
}

/// A component file as a plugin source pinned to its current content.
pub fn file_source(wasm: &Path) -> anyhow::Result<PluginSource> {
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    Ok(PluginSource::File { path: wasm.to_path_buf(), sha256: hex::encode(Sha256::digest(&bytes)) })
}

async fn inspect(wasm: &Path) -> anyhow::Result<()> {
    let host = PluginHost::new(HostArgs::offline_config()?)?;
    let plugin = host.load(&file_source(wasm)?).await?;
    print!("{}", render_inspect(&plugin));
    Ok(())
}

fn render_inspect(plugin: &LoadedPlugin) -> String {
    let m = plugin.metadata();
    let mut out = String::new();
    out += &format!("name:          {}\nversion:       {}\ncontract:      {}\nprovider key:  {}\n", m.name, m.version, plugin.contract(), m.provider_key);
    out += &format!("sha256:        {}\ndescription:   {}\n", plugin.sha256(), m.description);
    out += "credential references:\n";
    for r in &m.credential_refs {
        out += &format!("  {} ({:?})\n", r.path, r.kind);
    }
    out += &format!("token audiences: {}\n", list(&m.token_audiences));
    out += &format!("ambient credentials (operator-granted only): {}\n", list(&m.ambient_credentials));
    out += "imports:\n";
    for import in plugin.imports() {
        out += &format!("  {import}\n");
    }
    out
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "none".to_string() } else { items.join(", ") }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let RunArgs {
        wasm,
        store,
        key,
        version,
        property,
        fetch_metadata,
        extract,
        find_name,
        find_tags,
        find_path,
        validate,
        namespace,
        credentials,
        record,
        replay,
        show_values,
        host,
    } = args;
    let mut config = host.config()?;
    config.http.record = record;
    config.http.replay = replay;
    let plugin_host = PluginHost::new(config)?;
    let plugin = plugin_host.load(&file_source(&wasm)?).await?;
    let store_file = store;
    let objects = manifests::read_objects(&store_file)?;
    let manifest = objects
        .iter()
        .find(|o| matches!(manifests::kind(o), "SecretStore" | "ClusterSecretStore"))
        .with_context(|| format!("{}: no SecretStore or ClusterSecretStore", store_file.display()))?;
    let consumer = (!validate).then_some(namespace.as_str());
    let store = Store::from_manifest(manifest, consumer)?;
    if store.provider_key != plugin.metadata().provider_key {
        bail!("the store's provider is {:?}, but the component serves {:?}", store.provider_key, plugin.metadata().provider_key);
    }
    plugin_host.register(&store.provider_key, plugin);
    let credential_file = credentials.unwrap_or(store_file);
    let credential_text = std::fs::read_to_string(&credential_file).with_context(|| format!("reading {}", credential_file.display()))?;
    let backend = Arc::new(FileBackend::from_yaml(&credential_text)?);
    let bound = plugin_host
        .bind(StoreBinding { provider_key: store.provider_key.clone(), store: store.scope, controller_class: store.controller_class, credentials: backend })
        .map_err(|e| anyhow::anyhow!(lockstep_plugin_host::describe(&e)))?;
    let fail = |e: wit::ProviderError| anyhow::anyhow!(lockstep_plugin_host::describe(&e));
    if validate {
        let result = bound.validate().await.map_err(fail)?;
        println!("validation: {result:?}");
    } else if let Some(key) = key {
        let secret_ref = SecretRef {
            key,
            version,
            property,
            metadata_policy: if fetch_metadata { MetadataPolicy::Fetch } else { MetadataPolicy::None },
        };
        if extract {
            print_entries(&bound.get_secret_map(&secret_ref).await.map_err(fail)?, show_values);
        } else {
            let value = bound.get_secret(&secret_ref).await.map_err(fail)?;
            println!("{}: {}", secret_ref.key, show::value(&value.value, show_values));
            if let Some(version) = value.version {
                println!("version: {version}");
            }
        }
    } else if find_name.is_some() || !find_tags.is_empty() || find_path.is_some() {
        let tags = find_tags
            .iter()
            .map(|t| t.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).with_context(|| format!("--find-tag {t:?}: expected KEY=VALUE")))
            .collect::<anyhow::Result<_>>()?;
        let find = FindRequest { path: find_path, name_regexp: find_name, tags };
        print_entries(&bound.find_secrets(&find).await.map_err(fail)?, show_values);
    } else {
        bail!("say what to call: --ref KEY, --find-name / --find-tag / --find-path, or --validate");
    }
    Ok(())
}

fn print_entries(entries: &[wit::SecretEntry], show_values: bool) {
    for entry in entries {
        println!("{}: {}", entry.key, show::value(&entry.value, show_values));
    }
}
