//! `lockstep render -f manifests.yaml`: the Secrets that the stores,
//! ExternalSecrets and ClusterExternalSecrets (with Namespace objects) in a
//! file would produce — through the real plugin host and the same sync
//! logic as the controllers, without any cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use k8s_openapi::api::core::v1::Namespace;
use lockstep_api::manifest::{self, Manifest};
use lockstep_api::v1::ExternalSecret;
use lockstep_credentials::FileBackend;
use lockstep_plugin_host::wit::{self, ProviderError};
use lockstep_plugin_host::{PluginHost, StoreBinding};
use lockstep_sync::{Call, FetchResult, SecretSource, StoreKey, TemplateObjectKind, TemplateObjects};
use lockstep_templates::{FunctionConfig, Renderer, RendererConfig, Syntax, SYNTAX_ANNOTATION};
use serde_json::Value;

use crate::host_args::HostArgs;
use crate::manifests::Store;
use crate::show;

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Manifests: stores, ExternalSecrets, ClusterExternalSecrets, and the
    /// Namespaces, Secrets, ServiceAccounts and ConfigMaps they use.
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// Print secret values instead of their length and sha256.
    #[arg(long)]
    show_values: bool,
    /// Template function configuration, e.g. `-sprig.now,+eso` (docs/templates.md).
    #[arg(long, default_value = "")]
    template_functions: FunctionConfig,
    #[command(flatten)]
    host: HostArgs,
}

/// The file's objects, indexed the way resolution needs them.
struct World {
    stores: BTreeMap<StoreKey, Value>,
    external_secrets: Vec<ExternalSecret>,
    namespaces: Vec<Namespace>,
    config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
    secrets: BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
}

pub async fn execute(args: RenderArgs) -> anyhow::Result<()> {
    let RenderArgs { file, show_values, template_functions, host } = args;
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let world = World::parse(&text).with_context(|| format!("{}", file.display()))?;
    let plugin_host = host.host(host.config()?).await?;
    let credentials = Arc::new(FileBackend::from_yaml(&text)?);
    let renderer = Renderer::new(RendererConfig { functions: template_functions, ..RendererConfig::default() })?;

    let mut failures = 0;
    let mut first = true;
    for es in &world.external_secrets {
        let name = es.metadata.name.as_deref().unwrap_or_default();
        let namespace = es.metadata.namespace.as_deref().unwrap_or("default");
        match render_one(es, &world, &plugin_host, &credentials, &renderer).await {
            Ok(secret) => {
                if !std::mem::take(&mut first) {
                    println!("---");
                }
                print!("{}", secret_yaml(&secret, show_values));
            }
            Err(e) => {
                failures += 1;
                eprintln!("ExternalSecret {namespace}/{name}: {e:#}");
            }
        }
    }
    if world.external_secrets.is_empty() {
        eprintln!("no ExternalSecret in {} (and no ClusterExternalSecret selecting a Namespace in it)", file.display());
    }
    if failures > 0 {
        anyhow::bail!("{failures} ExternalSecret(s) could not be rendered");
    }
    Ok(())
}

impl World {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let mut world = World {
            stores: BTreeMap::new(),
            external_secrets: Vec::new(),
            namespaces: Vec::new(),
            config_maps: BTreeMap::new(),
            secrets: BTreeMap::new(),
        };
        let mut cluster_external_secrets = Vec::new();
        // Stores are kept as raw objects: the plugin gets `spec.provider.<key>` unchanged.
        for object in crate::manifests::parse_objects(text)? {
            let key = |kind| StoreKey {
                kind,
                name: crate::manifests::name(&object).to_string(),
                namespace: crate::manifests::namespace(&object).map(str::to_string),
            };
            match crate::manifests::kind(&object) {
                "SecretStore" => {
                    let mut k = key(lockstep_api::types::StoreKind::SecretStore);
                    k.namespace.get_or_insert_with(|| "default".into());
                    world.stores.insert(k, object);
                }
                "ClusterSecretStore" => {
                    let mut k = key(lockstep_api::types::StoreKind::ClusterSecretStore);
                    k.namespace = None;
                    world.stores.insert(k, object);
                }
                _ => {}
            }
        }
        for m in manifest::parse(text)? {
            match m {
                Manifest::ExternalSecret(es) => world.external_secrets.push(es),
                Manifest::ClusterExternalSecret(ces) => cluster_external_secrets.push(ces),
                Manifest::Namespace(ns) => world.namespaces.push(ns),
                Manifest::ConfigMap(cm) => {
                    let id = (cm.metadata.namespace.clone().unwrap_or_else(|| "default".into()), cm.metadata.name.clone().unwrap_or_default());
                    world.config_maps.insert(id, cm.data.unwrap_or_default());
                }
                Manifest::Secret(s) => {
                    let id = (s.metadata.namespace.clone().unwrap_or_else(|| "default".into()), s.metadata.name.clone().unwrap_or_default());
                    let mut data: BTreeMap<String, Vec<u8>> = s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
                    data.extend(s.string_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())));
                    world.secrets.insert(id, data);
                }
                Manifest::Unsupported(id) => eprintln!("skipping {id}: not supported by lockstep render"),
                Manifest::SecretStore(_) | Manifest::ClusterSecretStore(_) | Manifest::ServiceAccount(_) | Manifest::Other(_) => {}
            }
        }
        for ces in &cluster_external_secrets {
            for namespace in lockstep_sync::namespaces::ces_namespaces(ces, &world.namespaces)? {
                world.external_secrets.push(lockstep_sync::namespaces::ces_external_secret(ces, &namespace));
            }
        }
        Ok(world)
    }
}

async fn render_one(
    es: &ExternalSecret,
    world: &World,
    host: &PluginHost,
    credentials: &Arc<FileBackend>,
    renderer: &Renderer,
) -> anyhow::Result<lockstep_sync::DesiredSecret> {
    let name = es.metadata.name.as_deref().unwrap_or_default();
    let namespace = es.metadata.namespace.as_deref().unwrap_or("default");
    let plan = lockstep_sync::plan(&es.spec, namespace)?;
    let mut results = Vec::with_capacity(plan.fetches.len());
    for fetch in &plan.fetches {
        let manifest = world.stores.get(&fetch.store).with_context(|| format!("{} does not exist", fetch.store))?;
        let store = Store::from_manifest(manifest, Some(namespace))?;
        let binding = StoreBinding {
            provider_key: store.provider_key,
            store: store.scope,
            controller_class: store.controller_class,
            credentials: credentials.clone(),
        };
        let result = match host.bind(binding) {
            Ok(bound) => fetch_one(&bound, &fetch.call).await,
            Err(e) => Err(e),
        };
        results.push(match result {
            Ok(r) => r,
            Err(ProviderError::NotFound(_)) => FetchResult::NotFound,
            Err(e) => anyhow::bail!("{}: {}", fetch.store, lockstep_plugin_host::describe(&e)),
        });
    }
    let provider_data = lockstep_sync::resolve(&es.spec, &plan, &results, renderer)?;
    let mut objects = TemplateObjects::default();
    for (kind, object) in lockstep_sync::template_objects(&es.spec) {
        let id = (namespace.to_string(), object.clone());
        match kind {
            TemplateObjectKind::ConfigMap => {
                let data = world.config_maps.get(&id).with_context(|| format!("templateFrom: ConfigMap {namespace}/{object} is not in the file"))?;
                objects.config_maps.insert(object, data.clone());
            }
            TemplateObjectKind::Secret => {
                let data = world.secrets.get(&id).with_context(|| format!("templateFrom: Secret {namespace}/{object} is not in the file"))?;
                objects.secrets.insert(object, data.clone());
            }
        }
    }
    let empty = BTreeMap::new();
    let labels = es.metadata.labels.as_ref().unwrap_or(&empty);
    let annotations = es.metadata.annotations.as_ref().unwrap_or(&empty);
    let syntax = match annotations.get(SYNTAX_ANNOTATION) {
        Some(v) => Syntax::from_annotation(v).with_context(|| format!("annotation {SYNTAX_ANNOTATION}: {v:?} is neither go nor jinja"))?,
        None => Syntax::default(),
    };
    let source = SecretSource { name, namespace, labels, annotations, spec: &es.spec, syntax };
    Ok(lockstep_sync::desired_secret(&source, &provider_data.data, &objects, None, renderer)?)
}

async fn fetch_one(bound: &lockstep_plugin_host::BoundStore, call: &Call) -> Result<FetchResult, ProviderError> {
    let secret_ref = |r: &lockstep_sync::SecretRequest| wit::SecretRef {
        key: r.key.clone(),
        version: r.version.clone(),
        property: r.property.clone(),
        metadata_policy: match r.metadata_policy {
            lockstep_api::types::MetadataPolicy::Fetch => wit::MetadataPolicy::Fetch,
            _ => wit::MetadataPolicy::None,
        },
    };
    let entries = |e: Vec<wit::SecretEntry>| FetchResult::Map(e.into_iter().map(|e| (e.key, e.value)).collect());
    Ok(match call {
        Call::GetSecret(r) => FetchResult::Value(bound.get_secret(&secret_ref(r)).await?.value),
        Call::GetSecretMap(r) => entries(bound.get_secret_map(&secret_ref(r)).await?),
        Call::FindSecrets(f) => entries(
            bound
                .find_secrets(&wit::FindRequest {
                    path: f.path.clone(),
                    name_regexp: f.name_regexp.clone(),
                    tags: f.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                })
                .await?,
        ),
    })
}

/// The Secret as YAML, values shown as length + sha256 unless asked.
fn secret_yaml(secret: &lockstep_sync::DesiredSecret, show_values: bool) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {}\n  namespace: {}\n",
        secret.name, secret.namespace
    );
    for (field, map) in [("labels", &secret.labels), ("annotations", &secret.annotations)] {
        if !map.is_empty() {
            out += &format!("  {field}:\n");
            for (k, v) in map {
                out += &format!("    {k}: {}\n", yaml_scalar(v));
            }
        }
    }
    out += &format!("type: {}\n", secret.type_.as_deref().unwrap_or("Opaque"));
    if secret.immutable {
        out += "immutable: true\n";
    }
    let field = if show_values { "stringData" } else { "data" };
    out += &format!("{field}:   # {} key(s){}\n", secret.data.len(), if show_values { "" } else { "; values hidden, --show-values prints them" });
    for (k, v) in &secret.data {
        out += &format!("  {k}: {}\n", yaml_scalar(&show::value(v, show_values)));
    }
    out
}

fn yaml_scalar(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serialises")
}
