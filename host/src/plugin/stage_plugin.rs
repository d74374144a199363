//! The host side of the `pr-synthesizer` and `truncation` worlds, and of the imports they
//! get: `llm` (the pipeline's teacher, recorded like every other exchange) and `tokenizer`
//! (the pipeline's token counter). Each call runs in a fresh instance: these plugins are
//! called once per item, and no state may leak from one item into the next.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use wasmtime::component::{HasSelf, InstancePre, Linker};
use wasmtime::Store;

use super::engine::{LoadedPlugin, PluginEngine};
use super::failure::{classify, FailureKind, PluginFailure};
use super::inspect::{inspect, WorldKind};
use super::limits::Limits;
use super::state::{LlmFn, LlmRequest, StoreState};
use crate::tokenizer::TokenCounter;
use crate::trajectory::{FunctionCall, Message, Role, ToolCall, Trajectory};

mod pr_bindings {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "pr-synthesizer",
        with: {
            "sera:plugin/types": super::super::verifier::bindings::sera::plugin::types,
            "sera:plugin/log": super::super::verifier::bindings::sera::plugin::log,
        },
    });
}

mod trunc_bindings {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "truncation",
        with: {
            "sera:plugin/types": super::super::verifier::bindings::sera::plugin::types,
            "sera:plugin/log": super::super::verifier::bindings::sera::plugin::log,
        },
    });
}

mod filter_bindings {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "trajectory-filter",
        with: {
            "sera:plugin/types": super::super::verifier::bindings::sera::plugin::types,
            "sera:plugin/log": super::super::verifier::bindings::sera::plugin::log,
            "sera:plugin/tokenizer": super::trunc_bindings::sera::plugin::tokenizer,
        },
    });
}

use super::verifier::bindings::sera::plugin::types as wit;

fn role_to_wit(r: Role) -> wit::Role {
    match r {
        Role::System => wit::Role::System,
        Role::User => wit::Role::User,
        Role::Assistant => wit::Role::Assistant,
        Role::Tool => wit::Role::Tool,
    }
}

fn role_from_wit(r: wit::Role) -> Role {
    match r {
        wit::Role::System => Role::System,
        wit::Role::User => Role::User,
        wit::Role::Assistant => Role::Assistant,
        wit::Role::Tool => Role::Tool,
    }
}

fn message_to_wit(m: &Message) -> wit::Message {
    wit::Message {
        role: role_to_wit(m.role),
        content: m.content.clone(),
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| wit::ToolCall {
                id: c.id.clone(),
                name: c.function.name.clone(),
                arguments: c.function.arguments.clone(),
            })
            .collect(),
        tool_call_id: m.tool_call_id.clone(),
    }
}

fn message_from_wit(m: wit::Message) -> Message {
    Message {
        content: m.content,
        reasoning_content: None,
        role: role_from_wit(m.role),
        tool_call_id: m.tool_call_id,
        tool_calls: m
            .tool_calls
            .into_iter()
            .map(|c| ToolCall {
                function: FunctionCall {
                    arguments: c.arguments,
                    name: c.name,
                },
                id: c.id,
                kind: "function".into(),
            })
            .collect(),
    }
}

fn spec_to_wit(v: &serde_json::Value) -> wit::ToolSpec {
    let f = &v["function"];
    wit::ToolSpec {
        name: f["name"].as_str().unwrap_or_default().to_string(),
        description: f["description"].as_str().unwrap_or_default().to_string(),
        parameters: f["parameters"].to_string(),
    }
}

fn spec_from_wit(s: &wit::ToolSpec) -> serde_json::Value {
    serde_json::json!({"type": "function", "function": {
        "name": s.name,
        "description": s.description,
        "parameters": serde_json::from_str::<serde_json::Value>(&s.parameters)
            .unwrap_or(serde_json::Value::Null),
    }})
}

/// A trajectory as plugins see it (messages and tools; per-step costs stay on the host).
pub fn trajectory_to_wit(t: &Trajectory) -> wit::Trajectory {
    wit::Trajectory {
        messages: t.messages.iter().map(message_to_wit).collect(),
        tools: t.tools.iter().map(spec_to_wit).collect(),
    }
}

impl pr_bindings::sera::plugin::llm::Host for StoreState {
    fn complete(
        &mut self,
        request: pr_bindings::sera::plugin::llm::CompletionRequest,
    ) -> Result<wit::Message, String> {
        let Some(llm) = self.llm.as_mut() else {
            return Err("this host gives the plugin no teacher".into());
        };
        let req = LlmRequest {
            messages: request.messages.into_iter().map(message_from_wit).collect(),
            tools: request.tools.iter().map(spec_from_wit).collect(),
            max_tokens: request.max_tokens,
            temperature: request.temperature,
        };
        llm(req).map(|m| message_to_wit(&m))
    }
}

impl trunc_bindings::sera::plugin::tokenizer::Host for StoreState {
    fn count_tokens(&mut self, text: String) -> u32 {
        match &self.tokens {
            Some(t) => t.count(&text),
            None => text
                .len()
                .div_ceil(crate::tokenizer::ESTIMATE_BYTES_PER_TOKEN) as u32,
        }
    }

    fn count_chat_tokens(&mut self, messages: Vec<wit::Message>, tools: Vec<wit::ToolSpec>) -> u32 {
        let mut text = String::new();
        if !tools.is_empty() {
            text.push_str("<|im_start|>system\n# Tools\n<tools>\n");
            for t in &tools {
                text.push_str(&spec_from_wit(t).to_string());
                text.push('\n');
            }
            text.push_str("</tools><|im_end|>\n");
        }
        for m in messages {
            let role = match m.role {
                wit::Role::Tool => "user",
                wit::Role::System => "system",
                wit::Role::User => "user",
                wit::Role::Assistant => "assistant",
            };
            text.push_str(&format!("<|im_start|>{role}\n{}", m.content));
            for c in &m.tool_calls {
                text.push_str(&format!(
                    "\n<tool_call>\n{{\"name\": \"{}\", \"arguments\": {}}}\n</tool_call>",
                    c.name, c.arguments
                ));
            }
            text.push_str("<|im_end|>\n");
        }
        self.count_tokens(text)
    }
}

/// What both worlds share: a linked component, its limits and config.
struct Linked<P> {
    name: Arc<str>,
    sha256: Arc<str>,
    pre: P,
    limits: Limits,
    config: String,
}

impl<P> Linked<P> {
    fn failure(&self, item: &str, kind: FailureKind, message: String) -> PluginFailure {
        PluginFailure {
            plugin: self.name.clone(),
            sha256: self.sha256.clone(),
            item: item.to_string(),
            kind,
            message,
            backtrace: None,
        }
    }

    fn store(
        &self,
        engine: &wasmtime::Engine,
        item: &str,
    ) -> Result<Store<StoreState>, PluginFailure> {
        let state = StoreState::new(&self.limits, None)
            .map_err(|e| self.failure(item, FailureKind::Instantiate, format!("{e:#}")))?;
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        let _ = store.set_fuel(self.limits.fuel_per_call);
        Ok(store)
    }

    /// A trap or a guest `err`, as this item's failure.
    fn trapped(
        &self,
        item: &str,
        store: &mut Store<StoreState>,
        e: wasmtime::Error,
    ) -> PluginFailure {
        let (kind, message, backtrace) = classify(&e, store.data_mut(), self.limits.fuel_per_call);
        PluginFailure {
            backtrace,
            ..self.failure(item, kind, message)
        }
    }
}

type Call<'a, B, T> =
    Box<dyn FnOnce(&B, &mut Store<StoreState>) -> wasmtime::Result<Result<T, String>> + 'a>;

impl<P> Linked<P> {
    /// One fresh instance for one item: `setup` fills its store, then `init(config)`, then
    /// `call`. A trap, a refused config or a guest `err` is the item's failure.
    fn once<B, T>(
        &self,
        item: &str,
        engine: &wasmtime::Engine,
        setup: impl FnOnce(&mut StoreState),
        instantiate: impl FnOnce(&P, &mut Store<StoreState>) -> wasmtime::Result<B>,
        init: Call<'_, B, ()>,
        call: Call<'_, B, T>,
    ) -> Result<T, PluginFailure> {
        let mut store = self.store(engine, item)?;
        setup(store.data_mut());
        let b =
            instantiate(&self.pre, &mut store).map_err(|e| self.trapped(item, &mut store, e))?;
        match init(&b, &mut store) {
            Ok(Ok(())) => {}
            Ok(Err(m)) => return Err(self.failure(item, FailureKind::Init, m)),
            Err(e) => return Err(self.trapped(item, &mut store, e)),
        }
        let _ = store.set_fuel(self.limits.fuel_per_call);
        match call(&b, &mut store) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(m)) => Err(self.failure(item, FailureKind::GuestError, m)),
            Err(e) => Err(self.trapped(item, &mut store, e)),
        }
    }
}

impl<P> Linked<P> {
    /// Checks the world, links WASI and the world's imports, and pre-instantiates.
    fn link(
        engine: &PluginEngine,
        plugin: &LoadedPlugin,
        want: WorldKind,
        config: &str,
        limits: Limits,
        add: impl FnOnce(&mut Linker<StoreState>) -> wasmtime::Result<()>,
        typed: impl FnOnce(InstancePre<StoreState>) -> wasmtime::Result<P>,
    ) -> Result<Self> {
        check_world(engine, plugin, want)?;
        let mut linker = linker(engine)?;
        add(&mut linker).map_err(anyhow::Error::from)?;
        let pre = linker
            .instantiate_pre(&plugin.component)
            .and_then(typed)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{}: cannot link the {want} plugin", plugin.source))?;
        Ok(Linked {
            name: plugin.name.as_str().into(),
            sha256: plugin.sha256.as_str().into(),
            pre,
            limits,
            config: config.to_string(),
        })
    }
}

fn check_world(engine: &PluginEngine, plugin: &LoadedPlugin, want: WorldKind) -> Result<()> {
    let info = inspect(engine, plugin)?;
    if info.world != want {
        bail!(
            "{}: implements the {} world, not the {want} world",
            plugin.source,
            info.world
        );
    }
    Ok(())
}

fn linker(engine: &PluginEngine) -> Result<Linker<StoreState>> {
    let mut linker = Linker::<StoreState>::new(engine.engine());
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
    Ok(linker)
}

/// A PR synthesiser. `Send + Sync`; each call gets a fresh instance.
pub struct PrSynthesizer {
    linked: Linked<pr_bindings::PrSynthesizerPre<StoreState>>,
}

impl PrSynthesizer {
    pub fn new(
        engine: &PluginEngine,
        plugin: &LoadedPlugin,
        config: &str,
        limits: Limits,
    ) -> Result<Self> {
        let linked = Linked::link(
            engine,
            plugin,
            WorldKind::PrSynthesizer,
            config,
            limits,
            |l| pr_bindings::PrSynthesizer::add_to_linker::<_, HasSelf<_>>(l, |s| s),
            pr_bindings::PrSynthesizerPre::new,
        )?;
        Ok(Self { linked })
    }

    pub fn sha256(&self) -> &str {
        &self.linked.sha256
    }

    /// The PR description for rollout 1's trajectory and patch; `llm` answers the plugin's
    /// completions. Blocking: call it off the async workers.
    pub fn synthesize(
        &self,
        item: &str,
        trajectory: &Trajectory,
        patch: &str,
        llm: LlmFn,
    ) -> Result<String, PluginFailure> {
        let l = &self.linked;
        let (t, patch) = (trajectory_to_wit(trajectory), patch.to_string());
        l.once(
            item,
            l.pre.engine(),
            |s| s.llm = Some(llm),
            |pre, store| pre.instantiate(store),
            Box::new(|b: &pr_bindings::PrSynthesizer, s| {
                b.sera_plugin_pr_synthesis().call_init(s, &l.config)
            }),
            Box::new(|b: &pr_bindings::PrSynthesizer, s| {
                b.sera_plugin_pr_synthesis().call_synthesize(s, &t, &patch)
            }),
        )
    }
}

/// A truncation policy. `Send + Sync`; each call gets a fresh instance.
pub struct Truncator {
    linked: Linked<trunc_bindings::TruncationPre<StoreState>>,
    tokens: Arc<TokenCounter>,
}

impl Truncator {
    pub fn new(
        engine: &PluginEngine,
        plugin: &LoadedPlugin,
        config: &str,
        limits: Limits,
        tokens: Arc<TokenCounter>,
    ) -> Result<Self> {
        let linked = Linked::link(
            engine,
            plugin,
            WorldKind::Truncation,
            config,
            limits,
            |l| trunc_bindings::Truncation::add_to_linker::<_, HasSelf<_>>(l, |s| s),
            trunc_bindings::TruncationPre::new,
        )?;
        Ok(Self { linked, tokens })
    }

    pub fn sha256(&self) -> &str {
        &self.linked.sha256
    }

    /// How many leading messages of `trajectory` fit `budget` tokens by the plugin's policy,
    /// `Ok(None)` when it drops the item. The kept messages must be a prefix of the input.
    pub fn keep(
        &self,
        item: &str,
        trajectory: &Trajectory,
        budget: u32,
    ) -> Result<Option<usize>, PluginFailure> {
        let l = &self.linked;
        let input = trajectory_to_wit(trajectory);
        let out = l.once(
            item,
            l.pre.engine(),
            |s| s.tokens = Some(self.tokens.clone()),
            |pre, store| pre.instantiate(store),
            Box::new(|b: &trunc_bindings::Truncation, s| {
                b.sera_plugin_truncate().call_init(s, &l.config)
            }),
            // A guest `err` means "drop the item": a value here, not a failure.
            Box::new(|b: &trunc_bindings::Truncation, s| {
                b.sera_plugin_truncate()
                    .call_truncate(s, &input, budget)
                    .map(Ok)
            }),
        )?;
        let Ok(out) = out else { return Ok(None) };
        let n = out.messages.len();
        if n > input.messages.len() || out.messages[..] != input.messages[..n] {
            return Err(l.failure(
                item,
                FailureKind::MalformedReturn,
                "the truncated trajectory is not a prefix of the input's messages".into(),
            ));
        }
        Ok(Some(n))
    }
}

/// A trajectory filter. `Send + Sync`; each call gets a fresh instance.
pub struct TrajectoryFilter {
    linked: Linked<filter_bindings::TrajectoryFilterPre<StoreState>>,
    tokens: Arc<TokenCounter>,
}

impl TrajectoryFilter {
    pub fn new(
        engine: &PluginEngine,
        plugin: &LoadedPlugin,
        config: &str,
        limits: Limits,
        tokens: Arc<TokenCounter>,
    ) -> Result<Self> {
        let linked = Linked::link(
            engine,
            plugin,
            WorldKind::TrajectoryFilter,
            config,
            limits,
            |l| filter_bindings::TrajectoryFilter::add_to_linker::<_, HasSelf<_>>(l, |s| s),
            filter_bindings::TrajectoryFilterPre::new,
        )?;
        Ok(Self { linked, tokens })
    }

    pub fn name(&self) -> &str {
        &self.linked.name
    }

    pub fn sha256(&self) -> &str {
        &self.linked.sha256
    }

    /// `Ok(None)` keeps the trajectory, `Ok(Some(reason))` drops it.
    pub fn check(
        &self,
        item: &str,
        trajectory: &Trajectory,
        patch: &str,
    ) -> Result<Option<String>, PluginFailure> {
        let l = &self.linked;
        let (t, patch) = (trajectory_to_wit(trajectory), patch.to_string());
        l.once(
            item,
            l.pre.engine(),
            |s| s.tokens = Some(self.tokens.clone()),
            |pre, store| pre.instantiate(store),
            Box::new(|b: &filter_bindings::TrajectoryFilter, s| {
                b.sera_plugin_filter().call_init(s, &l.config)
            }),
            Box::new(|b: &filter_bindings::TrajectoryFilter, s| {
                b.sera_plugin_filter().call_check(s, &t, &patch)
            }),
        )
    }
}
